//! One run's facts: where the host is (root, settings, mode, the run's
//! clock) and what several checks share, gathered once on first use — the
//! agent's units, the node's identity, the TLS trust, the agent's proxy,
//! endpoint probes. The gathering itself lives in `host/` and `aws/`; this
//! module only caches it. In `local` mode nothing here leaves the host.

use crate::aws::identity::{self, Identity, IdentityError};
use crate::aws::tags::TagError;
use crate::aws::tags::{self, Found, NotRead};
use crate::config::schedule::window::{self, Window};
use crate::config::Settings;
use crate::host::agent::{self, AgentLookup};
use crate::host::mode::{Detected, Mode};
use crate::host::systemd::SystemBus;
use crate::host::{process, Root};
use crate::network::endpoints::{self, Probe, Proxy};
use crate::network::proxy::AgentProxy;
use futures_util::future::{BoxFuture, FutureExt, Shared as SharedFuture};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;
use tokio::sync::OnceCell;

/// Everything a check may look at. Cheap to clone into a check's task.
#[derive(Clone)]
pub struct Context {
    pub root: Root,
    pub settings: Arc<Settings>,
    pub host: Detected,
    /// The run's clock: every "how long ago" is measured from here.
    pub now: SystemTime,
    pub shared: Arc<Shared>,
}

/// What the last recorded run found that this run would otherwise wait
/// for, taken from its report. Each is only a head start: the instance
/// profile's credentials are fetched by the remembered name beside the
/// listing that names the role, and the remembered windows are read beside
/// the lookups that say which windows target the node; whatever this run
/// finds instead is asked for then, one round trip later.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Remembered {
    /// The instance profile role found attached (`credentials.role`'s `role`).
    pub role: Option<String>,
    /// The maintenance windows found targeting the node (`patch.sources`'
    /// `windows`).
    pub windows: Vec<String>,
}

impl Remembered {
    /// The remembered windows' IDs, each once; anything else the state file
    /// holds there (a window's name, a malformed ID) is never sent to SSM.
    pub fn window_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .windows
            .iter()
            .filter(|w| crate::aws::windows::valid_window_id(w))
            .cloned()
            .collect();
        // The detail names a window once per run of it ahead.
        ids.sort();
        ids.dedup();
        ids
    }
}

/// Facts several checks need, gathered once per run on first use.
pub struct Shared {
    pub bus: SystemBus,
    agent: OnceCell<AgentLookup>,
    identity: OnceCell<Result<Identity, IdentityError>>,
    /// What IMDS says of the instance profile role's credentials.
    role_status: OnceCell<Result<identity::RoleStatus, identity::RoleStatusError>>,
    /// The run's one IMDS client (one session token for every lookup).
    imds: OnceLock<crate::aws::identity::Imds>,
    tls: OnceLock<Result<Arc<rustls::ClientConfig>, crate::network::tls::TlsError>>,
    /// AWS RHUI's identity headers, read once for both repository checks.
    rhui: OnceCell<Result<Vec<(&'static str, String)>, String>>,
    /// The repositories' indexes, each asked once for both repository checks.
    indexes: Arc<crate::network::repos::Indexes>,
    probes: Mutex<HashMap<String, Arc<ProbeCell>>>,
    /// The Patch Group `patchgroup.tag` settled on, for the report's host.
    pub patch_group: OnceLock<String>,
    /// The Patch Group tag IMDS shows (EC2), read once.
    imds_tags: Detached<TagSource>,
    /// The Patch Group tags the API shows (ec2:DescribeTags, or
    /// ssm:ListTagsForResource on a hybrid node), read once.
    api_tags: Detached<TagSource>,
    /// One SSM client for the run's calls about this node.
    node_ssm: OnceCell<Result<aws_sdk_ssm::Client, AccessError>>,
    /// The node's credentials, resolved once (one IMDS fetch on EC2).
    credentials: Detached<Result<NodeCredentials, AccessError>>,
    /// What an earlier run found (`remember`), and the role's
    /// credentials, fetched beside the identity lookup.
    remembered: OnceLock<Remembered>,
    remembered_credentials: Detached<Result<aws_credential_types::Credentials, String>>,
    /// The node's patch state (DescribeInstancePatchStates), asked once:
    /// patch.last_run judges it, patch.sources times the last install.
    patch_state:
        Detached<Result<Option<crate::aws::patching::PatchState>, crate::aws::patching::CallError>>,
    /// Upcoming windows known besides the config's (the daemon's SSM schedule).
    pub windows: Mutex<Vec<Window>>,
}

/// The node's credentials as resolved once for a run: every signed call
/// of the run (SSM, STS, EC2) uses them, so the instance profile is fetched
/// from IMDS once, not once per client.
#[derive(Clone)]
pub struct NodeCredentials {
    pub provider: aws_credential_types::provider::SharedCredentialsProvider,
    /// Where they come from, for messages.
    pub source: String,
    pub expiry: Option<SystemTime>,
}

impl NodeCredentials {
    fn new(resolved: aws_credential_types::Credentials, source: String) -> NodeCredentials {
        NodeCredentials {
            expiry: resolved.expiry(),
            provider: aws_credential_types::provider::SharedCredentialsProvider::new(resolved),
            source,
        }
    }
}

/// What one source of tags answered.
pub type TagSource = Result<Vec<Found>, NotRead>;

/// One endpoint's probe, made once per run.
type ProbeCell = Detached<Result<Probe, ProbeError>>;

/// Why the region to probe is not known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegionUnknown {
    #[error("local mode: nothing on the network is contacted (use --mode ec2 or --mode hybrid on a managed node)")]
    Local,
    #[error("the region is unknown because the node's identity could not be read (agent.identity says why); set aws.region to check anyway")]
    NoIdentity,
}

/// Why an endpoint could not be probed at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    #[error(transparent)]
    Region(#[from] RegionUnknown),
    #[error("the endpoint URL for {service} is unusable: {error}")]
    BadUrl { service: String, error: String },
    #[error("{0}")]
    Tls(String),
    #[error("the agent's proxy setting is unusable: {0}")]
    BadProxy(String),
}

/// Why this run cannot reach AWS as the node does: no identity, no
/// credentials, no usable TLS trust or proxy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    #[error("{}", RegionUnknown::Local)]
    Local,
    #[error("the node's identity could not be read (agent.identity says why)")]
    NoIdentity,
    /// The agent's credentials could not be found or resolved.
    #[error("{0}")]
    Credentials(String),
    #[error("{0}")]
    Tls(String),
    #[error("{0}")]
    Proxy(String),
}

impl Context {
    /// The region to call: `aws.region` when set, else the identity's.
    pub fn region_of(&self, identity: &Identity) -> String {
        self.settings
            .aws
            .region
            .clone()
            .unwrap_or_else(|| identity.region.clone())
    }

    /// `bus_address`: `None` for the system bus (`DBUS_SYSTEM_BUS_ADDRESS`).
    pub fn new(
        root: Root,
        settings: Arc<Settings>,
        host: Detected,
        bus_address: Option<String>,
        now: SystemTime,
    ) -> Context {
        Context {
            root,
            settings,
            host,
            now,
            shared: Arc::new(Shared {
                bus: SystemBus::new(bus_address),
                agent: OnceCell::new(),
                identity: OnceCell::new(),
                imds: OnceLock::new(),
                role_status: OnceCell::new(),
                tls: OnceLock::new(),
                rhui: OnceCell::new(),
                indexes: Default::default(),
                probes: Default::default(),
                patch_group: OnceLock::new(),
                imds_tags: Detached::default(),
                api_tags: Detached::default(),
                node_ssm: OnceCell::new(),
                credentials: Detached::default(),
                remembered: OnceLock::new(),
                remembered_credentials: Detached::default(),
                patch_state: Detached::default(),
                windows: Default::default(),
            }),
        }
    }

    /// Upcoming windows: the config's and any the caller learned from SSM.
    pub fn upcoming_windows(&self) -> Vec<Window> {
        let now = jiff::Timestamp::try_from(self.now).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        let mut all = window::from_config(&self.settings.window, now, 2);
        all.extend(self.shared.windows.lock().unwrap().iter().cloned());
        window::merge(all)
    }

    /// The identity, if a check looked it up during this run.
    pub fn known_identity(&self) -> Option<&Identity> {
        self.shared.identity.get().and_then(|r| r.as_ref().ok())
    }

    pub fn is_local(&self) -> bool {
        self.host.mode == Mode::Local
    }

    /// Both agent units as systemd reports them, asked once per run.
    pub async fn agent_units(&self) -> &AgentLookup {
        self.shared
            .agent
            .get_or_init(|| agent::lookup(&self.shared.bus))
            .await
    }

    /// The node's identity (IMDSv2 or the hybrid registration), looked up once.
    pub async fn identity(&self) -> &Result<Identity, IdentityError> {
        self.shared
            .identity
            .get_or_init(|| {
                if self.host.mode != Mode::Local {
                    crate::aws::warm(&self.settings);
                }
                self.fetch_remembered_credentials();
                identity::lookup(&self.root, &self.host, self.imds())
            })
            .await
    }

    /// Remembers what an earlier run found, as a head start for this one;
    /// each is checked against what this run finds (`Remembered`).
    pub fn remember(self, earlier: Remembered) -> Context {
        let _ = self.shared.remembered.set(earlier);
        self
    }

    /// The remembered role, when its name is one IAM could have given.
    fn remembered_role(&self) -> Option<&str> {
        let role = self.shared.remembered.get()?.role.as_deref()?;
        identity::valid_role_name(role).then_some(role)
    }

    /// The maintenance windows an earlier run found targeting this node:
    /// patch.sources reads them at once, beside the lookups that say
    /// whether they still target it.
    pub fn remembered_windows(&self) -> Vec<String> {
        self.shared
            .remembered
            .get()
            .map(Remembered::window_ids)
            .unwrap_or_default()
    }

    /// Starts fetching the remembered role's credentials, when this run
    /// would take the instance profile's (EC2, IMDS allowed, no keys in
    /// the environment, which the agent would take first).
    fn fetch_remembered_credentials(&self) {
        let Some(name) = self.remembered_role().map(str::to_string) else {
            return;
        };
        if self.host.mode != Mode::Ec2
            || identity::imds_disabled_by_env()
            || crate::aws::sdk::keys_in_environment()
        {
            return;
        }
        let imds = self.imds().clone();
        self.shared.remembered_credentials.start(|| async move {
            let source =
                crate::aws::sdk::instance_profile(&imds, Some(&name)).map_err(|e| e.to_string())?;
            crate::aws::query::resolve(&source.provider)
                .await
                .map_err(|e| e.to_string())
        });
    }

    /// The remembered role's credentials, when the identity lookup listed
    /// that same role and IMDS gave them.
    async fn remembered_credentials(
        &self,
        id: &Identity,
    ) -> Option<aws_credential_types::Credentials> {
        let listed = match &id.role {
            Some(identity::Role::Attached { name }) => name,
            _ => return None,
        };
        if self.remembered_role() != Some(listed.as_str()) {
            return None;
        }
        self.shared.remembered_credentials.started()?.await.ok()
    }

    /// What IMDS says of the role `name`'s credentials (Code, Expiration),
    /// read once.
    pub async fn role_status(
        &self,
        name: &str,
    ) -> &Result<identity::RoleStatus, identity::RoleStatusError> {
        self.shared
            .role_status
            .get_or_init(|| async { identity::role_status(self.imds().client()?, name).await })
            .await
    }

    /// The run's IMDS client, made once.
    pub fn imds(&self) -> &crate::aws::identity::Imds {
        self.shared.imds.get_or_init(|| {
            crate::aws::identity::Imds::new(self.settings.aws.imds_endpoint.as_deref())
        })
    }

    /// The region to probe: `aws.region` in the config, else the identity's.
    pub async fn region(&self) -> Result<String, RegionUnknown> {
        if self.is_local() {
            return Err(RegionUnknown::Local);
        }
        if let Some(r) = &self.settings.aws.region {
            return Ok(r.clone());
        }
        match self.identity().await {
            Ok(id) => Ok(id.region.clone()),
            Err(_) => Err(RegionUnknown::NoIdentity),
        }
    }

    /// The TLS trust for probes and repository fetches, loaded once.
    pub fn tls(&self) -> Result<Arc<rustls::ClientConfig>, crate::network::tls::TlsError> {
        self.shared
            .tls
            .get_or_init(|| {
                crate::network::tls::client_config(self.settings.endpoints.ca_bundle.as_deref())
            })
            .clone()
    }

    /// The agent's proxy settings, when the agent runs and its environment can be read.
    pub async fn agent_proxy(&self) -> Option<AgentProxy> {
        let units = self.agent_units().await.as_ref().ok()?;
        let pid = units.in_use().filter(|u| u.main_pid > 0)?.main_pid;
        process::environment(&self.root, pid)
            .ok()
            .map(|env| AgentProxy::from_env(&env))
    }

    /// Probes a service's endpoint once per run; `endpoint.<service>` and
    /// `clock.sync` share the answer.
    pub async fn probe(&self, service: &str) -> Result<Probe, ProbeError> {
        let region = self.region().await?;
        let cell = {
            let mut probes = self.shared.probes.lock().unwrap();
            probes
                .entry(service.to_string())
                .or_insert_with(|| Arc::new(Detached::default()))
                .clone()
        };
        let (ctx, service) = (self.clone(), service.to_string());
        cell.get_or_spawn(|| async move {
            let service = service.as_str();
            let url = crate::aws::sdk::endpoint_override(&ctx.settings, service);
            let target = endpoints::target(service, &region, url.as_deref()).map_err(|e| {
                ProbeError::BadUrl {
                    service: service.to_string(),
                    error: e.to_string(),
                }
            })?;
            let tls = ctx.tls().map_err(|e| ProbeError::Tls(e.to_string()))?;
            let agent_proxy = ctx.agent_proxy().await;
            let proxy = match agent_proxy
                .as_ref()
                .and_then(|p| p.for_https(&target.host, target.port))
            {
                Some(url) => {
                    Some(Proxy::parse(url).map_err(|e| ProbeError::BadProxy(e.to_string()))?)
                }
                None => None,
            };
            Ok(endpoints::probe(target, tls, proxy, ctx.settings.endpoints.timeout).await)
        })
        .await
    }

    /// The run's repository indexes, each fetched once whichever repository
    /// check asks first.
    pub fn indexes(&self) -> Arc<crate::network::repos::Indexes> {
        self.shared.indexes.clone()
    }

    /// The headers AWS RHUI wants beside the entitlement certificate (the
    /// instance's signed identity, as the `amazon-id` plugin sends it).
    pub async fn rhui_headers(&self) -> Result<Vec<(&'static str, String)>, String> {
        self.shared
            .rhui
            .get_or_init(|| crate::aws::identity::rhui_headers(self.imds()))
            .await
            .clone()
    }

    /// An HTTPS client for AWS endpoints outside the SDK (STS, S3 objects):
    /// the run's TLS trust, through the agent's proxy as the agent would go.
    pub async fn aws_http(&self) -> Result<reqwest::Client, AccessError> {
        let tls = self.tls().map_err(|e| AccessError::Tls(e.to_string()))?;
        let proxy = self.agent_proxy().await;
        crate::network::repos::client(tls, proxy.as_ref(), &[], self.settings.endpoints.timeout)
            .map_err(|e| AccessError::Proxy(e.to_string()))
    }

    /// Where `service`'s regional endpoint is for this node, or its override.
    pub fn endpoint_url(&self, service: &str, region: &str) -> String {
        crate::aws::sdk::endpoint_override(&self.settings, service).unwrap_or_else(|| {
            format!(
                "https://{}",
                crate::network::endpoints::regional_host(service, region)
            )
        })
    }

    /// An SSM client for this node: its region (`aws.region` or the
    /// identity's) and the credentials the agent would use.
    pub fn ssm_client(
        &self,
        identity: &Identity,
    ) -> Result<aws_sdk_ssm::Client, crate::aws::sdk::CredentialsError> {
        let credentials =
            crate::aws::sdk::credentials(&self.root, &self.settings, identity, self.imds())?;
        let region = self.region_of(identity);
        Ok(crate::aws::sdk::ssm_client(
            &self.settings,
            &region,
            &credentials,
        ))
    }

    /// The node's credentials, resolved once per run.
    pub async fn node_credentials(&self, id: &Identity) -> Result<NodeCredentials, AccessError> {
        let (ctx, id) = (self.clone(), id.clone());
        self.shared
            .credentials
            .get_or_spawn(|| async move {
                if let Some(resolved) = ctx.remembered_credentials(&id).await {
                    return Ok(NodeCredentials::new(
                        resolved,
                        crate::aws::sdk::INSTANCE_PROFILE.into(),
                    ));
                }
                let source =
                    crate::aws::sdk::credentials(&ctx.root, &ctx.settings, &id, ctx.imds())
                        .map_err(|e| AccessError::Credentials(e.to_string()))?;
                let resolved = crate::aws::query::resolve(&source.provider)
                    .await
                    .map_err(|e| AccessError::Credentials(e.to_string()))?;
                Ok(NodeCredentials::new(resolved, source.source))
            })
            .await
    }

    /// The node and one SSM client for it, made once per run; `Err` says
    /// why there is none (local mode, no identity, no credentials).
    pub async fn node_ssm(&self) -> Result<(Identity, aws_sdk_ssm::Client), AccessError> {
        if self.is_local() {
            return Err(AccessError::Local);
        }
        let id = match self.identity().await {
            Ok(id) => id.clone(),
            Err(_) => return Err(AccessError::NoIdentity),
        };
        let client = self
            .shared
            .node_ssm
            .get_or_init(|| async {
                let credentials = self.node_credentials(&id).await?;
                let region = self.region_of(&id);
                Ok(crate::aws::sdk::ssm_client(
                    &self.settings,
                    &region,
                    &crate::aws::sdk::Credentials {
                        provider: credentials.provider,
                        source: credentials.source,
                    },
                ))
            })
            .await
            .clone()?;
        Ok((id, client))
    }

    /// The node's patch state, read once per run (`None`: never scanned).
    pub async fn patch_state(
        &self,
        ssm: &aws_sdk_ssm::Client,
        instance_id: &str,
    ) -> Result<Option<crate::aws::patching::PatchState>, crate::aws::patching::CallError> {
        let (ssm, instance_id) = (ssm.clone(), instance_id.to_string());
        self.shared
            .patch_state
            .get_or_spawn(
                || async move { crate::aws::patching::patch_state(&ssm, &instance_id).await },
            )
            .await
    }

    /// The node's Patch Group: `patch_group.value`, else the value its tags
    /// agree on. `Ok(None)` when it has none or they disagree
    /// (`patchgroup.tag` says which).
    pub async fn patch_group(&self, id: &Identity) -> Option<String> {
        if let Some(v) = &self.settings.patch_group.value {
            return Some(v.clone());
        }
        let (found, _) = self.patch_group_tags(id).await;
        tags::agreed(found.iter().map(|f| f.value.as_str()))
    }

    /// The node's Patch Group tags as each source has them, and the sources
    /// that could not be read, each source read once per run.
    pub async fn patch_group_tags(&self, id: &Identity) -> (Vec<Found>, Vec<NotRead>) {
        let (imds, api) = tokio::join!(self.imds_tags(), self.api_tags(id));
        let mut found = Vec::new();
        let mut not_read = Vec::new();
        for source in [imds, api] {
            match source {
                Ok(f) => found.extend(f),
                Err(n) => not_read.push(n),
            }
        }
        (found, not_read)
    }

    /// The tag sources as they answer, each a list of (key, value): the
    /// config's value under both keys, or IMDS's and the API's tags, so a
    /// caller can act on the first before the second has answered.
    pub fn patch_group_sources<'a>(
        &'a self,
        id: &'a Identity,
    ) -> Vec<futures_util::future::BoxFuture<'a, Vec<(String, String)>>> {
        use futures_util::FutureExt;
        let pairs = |source: TagSource| -> Vec<(String, String)> {
            source
                .unwrap_or_default()
                .into_iter()
                .map(|f| (f.key, f.value))
                .collect()
        };
        if let Some(v) = &self.settings.patch_group.value {
            let both = vec![
                ("Patch Group".to_string(), v.clone()),
                ("PatchGroup".to_string(), v.clone()),
            ];
            return vec![std::future::ready(both).boxed()];
        }
        vec![
            self.imds_tags().map(pairs).boxed(),
            self.api_tags(id).map(pairs).boxed(),
        ]
    }

    /// The `PatchGroup` tag IMDS shows, on EC2 (it needs no identity, so it
    /// is read beside the identity's own calls).
    pub async fn imds_tags(&self) -> TagSource {
        let ctx = self.clone();
        self.shared
            .imds_tags
            .get_or_spawn(|| async move {
                if ctx.host.mode != Mode::Ec2 {
                    return Ok(Vec::new());
                }
                if identity::imds_disabled_by_env() {
                    return Err(NotRead {
                        source: "IMDS instance tags",
                        why: "AWS_EC2_METADATA_DISABLED is true, so the instance metadata service is not asked".into(),
                    });
                }
                let read = async { tags::from_imds(ctx.imds().client()?).await };
                match read.await {
                    Ok(f) => Ok(f.into_iter().collect()),
                    Err(why) => Err(NotRead {
                        source: "IMDS instance tags",
                        why: why.to_string(),
                    }),
                }
            })
            .await
    }

    /// ec2:DescribeTags on EC2, ssm:ListTagsForResource on a hybrid node.
    pub async fn api_tags(&self, id: &Identity) -> TagSource {
        let (ctx, id) = (self.clone(), id.clone());
        self.shared
            .api_tags
            .get_or_spawn(|| async move {
                let id = &id;
                match id.mode {
                    Mode::Ec2 => ctx.ec2_tags(id).await.map_err(|why| NotRead {
                        source: "ec2:DescribeTags",
                        why: why.to_string(),
                    }),
                    Mode::Hybrid => {
                        let read = async {
                            let ssm = ctx.ssm_client(id).map_err(|e| e.to_string())?;
                            tags::from_ssm(&ssm, &id.instance_id)
                                .await
                                .map_err(|e| e.to_string())
                        };
                        read.await.map_err(|why| NotRead {
                            source: "ssm:ListTagsForResource",
                            why,
                        })
                    }
                    Mode::Local => Ok(Vec::new()),
                }
            })
            .await
    }

    async fn ec2_tags(&self, id: &Identity) -> Result<Vec<Found>, TagError> {
        let region = self.region_of(id);
        let endpoint = self.endpoint_url("ec2", &region);
        let http = self
            .tls()
            .map_err(|e| TagError::Call(e.to_string()))
            .and_then(|t| {
                reqwest::Client::builder()
                    .use_preconfigured_tls((*t).clone())
                    .timeout(self.settings.endpoints.timeout)
                    .build()
                    .map_err(|e| TagError::Call(e.to_string()))
            })?;
        let creds = self
            .node_credentials(id)
            .await
            .map_err(|e| TagError::Call(e.to_string()))?;
        tags::from_ec2(&http, &endpoint, &region, &creds.provider, &id.instance_id).await
    }
}

/// A fact computed once per run by a task of its own. The check that asks
/// first may be cancelled (its timeout, or a race it lost to an endpoint
/// probe's failure); with a plain `OnceCell` the next asker would then
/// start the work again, from the beginning, and a 3 s network wait became
/// 6 s, past a check's timeout. Here the work goes on in its task, and
/// every asker, first or later, waits for that same task's answer. The
/// task holds the run's context only until it ends.
pub struct Detached<T>(Mutex<Option<SharedFuture<BoxFuture<'static, T>>>>);

impl<T> Default for Detached<T> {
    fn default() -> Self {
        Detached(Mutex::new(None))
    }
}

impl<T: Clone + Send + Sync + 'static> Detached<T> {
    /// The answer, starting `make`'s work in a task on the first call.
    pub async fn get_or_spawn<F>(&self, make: impl FnOnce() -> F) -> T
    where
        F: std::future::Future<Output = T> + Send + 'static,
    {
        self.start(make);
        self.started().expect("started above").await
    }

    /// The work's answer, if it was started.
    pub fn started(&self) -> Option<SharedFuture<BoxFuture<'static, T>>> {
        self.0.lock().unwrap().clone()
    }

    /// Starts `make`'s work in a task, unless it was started already.
    pub fn start<F>(&self, make: impl FnOnce() -> F)
    where
        F: std::future::Future<Output = T> + Send + 'static,
    {
        self.0.lock().unwrap().get_or_insert_with(|| {
            let task = tokio::spawn(make());
            async move {
                match task.await {
                    Ok(answer) => answer,
                    // A panic in the work is the asker's panic, as it
                    // would have been without the task.
                    Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                    Err(_) => panic!("the run's runtime stopped while a fact was read"),
                }
            }
            .boxed()
            .shared()
        });
    }
}

#[cfg(test)]
mod remembered_tests {
    use super::Remembered;

    #[test]
    fn only_well_formed_window_ids_are_remembered_each_once() {
        let earlier = Remembered {
            role: None,
            windows: [
                "mw-0123456789abcdef0",
                "weekly",
                "mw-0123456789abcdef0",
                "mw-1;x",
                "mw-0fedcba9876543210",
            ]
            .map(String::from)
            .to_vec(),
        };
        assert_eq!(
            earlier.window_ids(),
            ["mw-0123456789abcdef0", "mw-0fedcba9876543210"]
        );
        assert!(Remembered::default().window_ids().is_empty());
    }
}

#[cfg(test)]
mod detached_tests {
    use super::Detached;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    /// The black-holed run's flake (issue #28): the first asker cancelled
    /// half-way, the next one must get the same work's answer, on time,
    /// not start it again.
    #[tokio::test]
    async fn a_cancelled_first_asker_does_not_restart_the_work() {
        let fact: Arc<Detached<u32>> = Arc::default();
        let started = Arc::new(AtomicUsize::new(0));
        let work = |started: Arc<AtomicUsize>| {
            move || async move {
                started.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(300)).await;
                42
            }
        };
        let first = tokio::time::timeout(
            Duration::from_millis(50),
            fact.get_or_spawn(work(started.clone())),
        )
        .await;
        assert!(first.is_err(), "the first asker gave up at 50 ms");
        assert_eq!(fact.get_or_spawn(work(started.clone())).await, 42);
        // With a plain OnceCell the second asker started it again.
        assert_eq!(started.load(Ordering::SeqCst), 1, "the work ran once");
    }

    #[tokio::test]
    #[should_panic(expected = "the work's own panic")]
    async fn a_panic_in_the_work_reaches_the_asker() {
        let fact: Detached<u32> = Detached::default();
        fact.get_or_spawn(|| async { panic!("the work's own panic") })
            .await;
    }
}
