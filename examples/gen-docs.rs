//! Writes what is made from the code itself:
//!
//! - `cargo run --example gen-docs -- DIR`: the man page and the shell
//!   completions from the command line's definition, for the packages
//!   (`ssm-preflight.1`, `completions/{ssm-preflight.bash,_ssm-preflight,ssm-preflight.fish}`);
//! - `cargo run --example gen-docs -- --reference docs`: the checks reference
//!   (`checks.md`, from the check registry) and the configuration reference
//!   (`configuration.md`, from the settings). The suite fails when the
//!   committed files differ from these.

use clap::CommandFactory;
use clap_complete::Shell;
use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    if std::env::args().nth(1).as_deref() == Some("--reference") {
        let dir = PathBuf::from(std::env::args().nth(2).unwrap_or_else(|| "docs".into()));
        std::fs::write(
            dir.join("checks.md"),
            ssm_preflight::checks::reference::markdown(),
        )?;
        let config = ssm_preflight::config::reference::markdown().map_err(std::io::Error::other)?;
        std::fs::write(dir.join("configuration.md"), config)?;
        println!("{}", dir.display());
        return Ok(());
    }
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "target/docs".into()),
    );
    std::fs::create_dir_all(dir.join("completions"))?;
    let cmd = ssm_preflight::commands::cli::Cli::command();
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut page)?;
    std::fs::write(dir.join("ssm-preflight.1"), page)?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(
            shell,
            &mut cmd.clone(),
            "ssm-preflight",
            dir.join("completions"),
        )?;
    }
    println!("{}", dir.display());
    Ok(())
}
