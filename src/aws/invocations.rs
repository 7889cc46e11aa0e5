//! The node's last patch runs as Run Command recorded them: a run that failed
//! leaves the patch states of the run before it (they change only when a run
//! completes), so only its invocation shows it. `ListCommandInvocations` for
//! each patch document (newest first, with the plugin's response code),
//! `ListCommands` for the failed run's Operation, `GetCommandInvocation` for
//! its error output. All three are optional actions.

use super::patching::{classify, CallError};
use aws_sdk_ssm::types::{CommandFilter, CommandFilterKey};
use std::time::SystemTime;

use super::patching::PATCH_DOCUMENTS;

/// Invocations read, newest first.
pub const RECENT: usize = 5;

/// The error output shown: its last lines, at most this many characters.
const TAIL_LINES: usize = 8;
const TAIL_CHARS: usize = 800;

/// One patch run on this node, as Run Command recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Invocation {
    pub command_id: String,
    pub document: String,
    pub requested: Option<SystemTime>,
    /// `Success`, `Failed`, `TimedOut`, `Cancelled`, `InProgress`, …
    pub status: String,
    /// SSM's finer word: `ExecutionTimedOut`, `Undeliverable`, …
    pub status_details: String,
    /// The Linux plugin's exit code, when it ran.
    pub response_code: Option<i32>,
}

impl Invocation {
    /// The run ended without doing its work.
    pub fn failed(&self) -> bool {
        matches!(self.status.as_str(), "Failed" | "TimedOut")
    }
}

/// What is known of a failed run beyond its invocation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FailedRun {
    /// `Scan` or `Install`, from the command's parameters.
    pub operation: Option<String>,
    /// The last lines of its error output, secrets masked.
    pub error_tail: Option<String>,
    /// The calls refused or failed on the way, each a sentence.
    pub not_read: Vec<String>,
}

/// The node's most recent patch runs, newest first, at most `RECENT`: one
/// call per patch document, at once.
pub async fn recent(
    ssm: &aws_sdk_ssm::Client,
    instance_id: &str,
) -> Result<Vec<Invocation>, CallError> {
    let [plain, hooks] = PATCH_DOCUMENTS;
    let (a, b) = tokio::join!(
        of_document(ssm, instance_id, plain),
        of_document(ssm, instance_id, hooks)
    );
    let mut all = a?;
    all.extend(b?);
    // Newest first; one without a date last.
    all.sort_by_key(|i| std::cmp::Reverse(i.requested));
    all.truncate(RECENT);
    Ok(all)
}

async fn of_document(
    ssm: &aws_sdk_ssm::Client,
    instance_id: &str,
    document: &str,
) -> Result<Vec<Invocation>, CallError> {
    const ACTION: &str = "ssm:ListCommandInvocations";
    let filter = CommandFilter::builder()
        .key(CommandFilterKey::DocumentName)
        .value(document)
        .build()
        .map_err(|e| CallError::Failed(e.to_string()))?;
    let out = ssm
        .list_command_invocations()
        .instance_id(instance_id)
        .filters(filter)
        .details(true)
        .max_results(RECENT as i32)
        .send()
        .await
        .map_err(|e| classify(&e, ACTION))?;
    Ok(out
        .command_invocations()
        .iter()
        .map(|c| Invocation {
            command_id: c.command_id().unwrap_or_default().to_string(),
            document: c.document_name().unwrap_or(document).to_string(),
            requested: c
                .requested_date_time()
                .and_then(|t| super::sdk::aws_date("RequestedDateTime", t).ok()),
            status: c
                .status()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            status_details: c.status_details().unwrap_or_default().to_string(),
            // The Linux step is the plugin that ran (the Windows one is
            // skipped on Linux and reports no code).
            response_code: c
                .command_plugins()
                .iter()
                .find(|p| p.name() == Some("PatchLinux"))
                .or(c.command_plugins().first())
                .map(|p| p.response_code()),
        })
        .collect())
}

/// The Operation and error output of a failed run, each read if allowed.
pub async fn failed_run(
    ssm: &aws_sdk_ssm::Client,
    instance_id: &str,
    run: &Invocation,
) -> FailedRun {
    let (operation, output) = tokio::join!(
        operation(ssm, &run.command_id),
        error_output(ssm, &run.command_id, instance_id)
    );
    let mut out = FailedRun::default();
    match operation {
        Ok(op) => out.operation = op,
        Err(e) => out.not_read.push(format!("its Operation ({e})")),
    }
    match output {
        Ok(text) => out.error_tail = Some(tail(&text)).filter(|t| !t.is_empty()),
        Err(e) => out.not_read.push(format!("its error output ({e})")),
    }
    out
}

async fn operation(
    ssm: &aws_sdk_ssm::Client,
    command_id: &str,
) -> Result<Option<String>, CallError> {
    const ACTION: &str = "ssm:ListCommands";
    let out = ssm
        .list_commands()
        .command_id(command_id)
        .send()
        .await
        .map_err(|e| classify(&e, ACTION))?;
    Ok(out
        .commands()
        .first()
        .and_then(|c| c.parameters())
        .and_then(|p| p.get("Operation"))
        .and_then(|v| v.first())
        .cloned())
}

async fn error_output(
    ssm: &aws_sdk_ssm::Client,
    command_id: &str,
    instance_id: &str,
) -> Result<String, CallError> {
    const ACTION: &str = "ssm:GetCommandInvocation";
    let out = ssm
        .get_command_invocation()
        .command_id(command_id)
        .instance_id(instance_id)
        .plugin_name("PatchLinux")
        .send()
        .await
        .map_err(|e| classify(&e, ACTION))?;
    Ok(out.standard_error_content().unwrap_or_default().to_string())
}

/// What an exit code of the Linux patch step means, where the document or
/// the agent gives it one. (The document's own script: 151–156 from its
/// payload loader, 156 also for an error the payload raises without its own
/// code, 194–196 the reboot it asks the agent for; 1 its shell's refusal.)
pub fn meaning(code: i32) -> Option<&'static str> {
    Some(match code {
        1 => "the document's shell step stopped before the payload ran: no Python the payload can use with this package manager, or yum's Python module does not import (the output says which)",
        151 => "the payload was downloaded but its SHA-256 is not the document's: something between the node and S3 altered it",
        152 => "the payload could not be loaded and extracted",
        154 => "the payload's working directory under /var/log/amazon/ssm could not be created (a full or read-only /var/log)",
        155 => "the payload's archive could not be extracted (often a full /var/log)",
        156 => "the payload could not be downloaded from S3, or the patch operation stopped on an error of its own (the output says which)",
        194 => "the install asked the agent to reboot the node, and the run did not complete after it",
        195 => "patches failed to install and the run asked for a reboot",
        196 => "a dependency failed to install and the run asked for a reboot",
        -1 => "the agent ended the run before the step returned (a timeout or a cancel)",
        _ => return None,
    })
}

/// The last `TAIL_LINES` non-empty lines of `text`, at most `TAIL_CHARS`
/// characters, with anything that looks like a credential masked.
pub fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = lines.len().saturating_sub(TAIL_LINES);
    let joined = mask_secrets(&lines[start..].join("\n"));
    let count = joined.chars().count();
    if count <= TAIL_CHARS {
        return joined;
    }
    let cut: String = joined.chars().skip(count - TAIL_CHARS).collect();
    format!("…{cut}")
}

/// Masks access key IDs (`AKIA…`, `ASIA…`) and long runs of key-like
/// characters (secret keys, session tokens, presigned signatures). Written
/// here, not with a regex crate: two shapes do not need a regex engine in
/// the binary.
pub fn mask_secrets(text: &str) -> String {
    // A URL with a password (a proxy's, in curl's words) keeps its user
    // only, as everywhere else: `http://alice:***@proxy:3128`.
    let text: String = text
        .split_inclusive(char::is_whitespace)
        .map(|part| {
            let url = part.trim_end();
            if url.contains("://") && url.contains('@') {
                crate::network::proxy::redact(url) + &part[url.len()..]
            } else {
                part.to_string()
            }
        })
        .collect();
    let token_char = |c: char| c.is_ascii_alphanumeric() || "+/=_-%".contains(c);
    let mut out = String::with_capacity(text.len());
    let mut word = String::new();
    for c in text.chars() {
        if token_char(c) {
            word.push(c);
        } else {
            out.push_str(&mask_word(&word));
            word.clear();
            out.push(c);
        }
    }
    out.push_str(&mask_word(&word));
    out
}

/// One run of key-like characters, masked where it looks like a secret.
fn mask_word(word: &str) -> String {
    let mixed =
        word.chars().any(|c| c.is_ascii_digit()) && word.chars().any(|c| c.is_ascii_alphabetic());
    if word.len() >= 32 && mixed {
        return "***".into();
    }
    // An access key ID: AKIA or ASIA and 16 capitals or digits, wherever
    // it stands in the run (`Credential=ASIA…%2F…`).
    let bytes = word.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < bytes.len() {
        let rest = &word[i..];
        let is_key = (rest.starts_with("AKIA") || rest.starts_with("ASIA"))
            && rest.len() >= 20
            && rest.as_bytes()[4..20]
                .iter()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
        if is_key {
            out.push_str(&rest[..4]);
            out.push_str("***");
            i += 20;
        } else {
            out.push(bytes[i] as char);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_the_document_exits_with_has_a_meaning() {
        for code in [1, 151, 152, 154, 155, 156, 194, 195, 196, -1] {
            assert!(meaning(code).is_some(), "{code}");
        }
        assert_eq!(meaning(0), None);
        assert_eq!(meaning(42), None);
        assert!(meaning(156).unwrap().contains("downloaded from S3"));
    }

    #[test]
    fn secrets_are_masked_and_words_kept() {
        let text = "curl: (22) 403 https://b.s3.amazonaws.com/p?X-Amz-Credential=ASIAXAMPLE1234567890%2F20261206&X-Amz-Signature=0fake5ign4ture0f4presigned0url00000000000000 key AKIAIOSFODNN7EXAMPLE secret wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY1 on ip-10-0-1-5";
        let masked = mask_secrets(text);
        for secret in [
            "ASIAXAMPLE1234567890",
            "0fake5ign4ture",
            "AKIAIOSFODNN7EXAMPLE",
            "wJalrXUtnFEMI",
        ] {
            assert!(!masked.contains(secret), "{secret} in {masked}");
        }
        let proxied = mask_secrets("Failed to connect via http://alice:S3cretPw@proxy:3128 now");
        assert_eq!(
            proxied,
            "Failed to connect via http://alice:***@proxy:3128 now"
        );
        // What is no secret stays as it was.
        let kept = [
            "AKIA***",
            "curl: (22) 403 https://b.s3.amazonaws.com/p?",
            "on ip-10-0-1-5",
        ];
        assert!(kept.iter().all(|k| masked.contains(k)), "{masked}");
    }

    #[test]
    fn the_tail_is_the_last_lines_bounded() {
        let text: String = (1..=20).map(|i| format!("line {i}\n\n")).collect();
        let t = tail(&text);
        assert_eq!(t.lines().count(), TAIL_LINES);
        assert!(t.starts_with("line 13") && t.ends_with("line 20"), "{t}");
        let long = "x ".repeat(2000);
        let t = tail(&long);
        assert!(t.starts_with('…') && t.chars().count() == TAIL_CHARS + 1);
    }
}
