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
    probes: Mutex<HashMap<String, Arc<ProbeCell>>>,
    /// The Patch Group `patchgroup.tag` settled on, for the report's host.
    pub patch_group: OnceLock<String>,
    /// The Patch Group tag IMDS shows (EC2), read once.
    imds_tags: OnceCell<TagSource>,
    /// The Patch Group tags the API shows (ec2:DescribeTags, or
    /// ssm:ListTagsForResource on a hybrid node), read once.
    api_tags: OnceCell<TagSource>,
    /// One SSM client for the run's calls about this node.
    node_ssm: OnceCell<Result<aws_sdk_ssm::Client, AccessError>>,
    /// The node's credentials, resolved once (one IMDS fetch on EC2).
    credentials: OnceCell<Result<NodeCredentials, AccessError>>,
    /// The node's patch state (DescribeInstancePatchStates), asked once:
    /// patch.last_run judges it, patch.sources times the last install.
    patch_state:
        OnceCell<Result<Option<crate::aws::patching::PatchState>, crate::aws::patching::CallError>>,
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

/// What one source of tags answered.
pub type TagSource = Result<Vec<Found>, NotRead>;

/// One endpoint's probe, made once per run.
type ProbeCell = OnceCell<Result<Probe, ProbeError>>;

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
                probes: Default::default(),
                patch_group: OnceLock::new(),
                imds_tags: OnceCell::new(),
                api_tags: OnceCell::new(),
                node_ssm: OnceCell::new(),
                credentials: OnceCell::new(),
                patch_state: OnceCell::new(),
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
            .get_or_init(|| identity::lookup(&self.root, &self.host, self.imds()))
            .await
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
                .or_insert_with(|| Arc::new(OnceCell::new()))
                .clone()
        };
        cell.get_or_init(|| async {
            let url = crate::aws::sdk::endpoint_override(&self.settings, service);
            let target = endpoints::target(service, &region, url.as_deref()).map_err(|e| {
                ProbeError::BadUrl {
                    service: service.to_string(),
                    error: e.to_string(),
                }
            })?;
            let tls = self.tls().map_err(|e| ProbeError::Tls(e.to_string()))?;
            let agent_proxy = self.agent_proxy().await;
            let proxy = match agent_proxy
                .as_ref()
                .and_then(|p| p.for_https(&target.host, target.port))
            {
                Some(url) => {
                    Some(Proxy::parse(url).map_err(|e| ProbeError::BadProxy(e.to_string()))?)
                }
                None => None,
            };
            Ok(endpoints::probe(target, tls, proxy, self.settings.endpoints.timeout).await)
        })
        .await
        .clone()
    }

    /// The headers AWS RHUI wants beside the entitlement certificate (the
    /// instance's signed identity, as the `amazon-id` plugin sends it).
    pub async fn rhui_headers(&self) -> Result<Vec<(&'static str, String)>, String> {
        crate::aws::identity::rhui_headers(self.imds()).await
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
        self.shared
            .credentials
            .get_or_init(|| async {
                let source =
                    crate::aws::sdk::credentials(&self.root, &self.settings, id, self.imds())
                        .map_err(|e| AccessError::Credentials(e.to_string()))?;
                let resolved = crate::aws::query::resolve(&source.provider)
                    .await
                    .map_err(|e| AccessError::Credentials(e.to_string()))?;
                Ok(NodeCredentials {
                    expiry: resolved.expiry(),
                    provider: aws_credential_types::provider::SharedCredentialsProvider::new(
                        resolved,
                    ),
                    source: source.source,
                })
            })
            .await
            .clone()
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
        self.shared
            .patch_state
            .get_or_init(|| crate::aws::patching::patch_state(ssm, instance_id))
            .await
            .clone()
    }

    /// The node's Patch Group: `patch_group.value`, else the value its tags
    /// agree on. `Ok(None)` when it has none or they disagree
    /// (`patchgroup.tag` says which).
    pub async fn patch_group(&self, id: &Identity) -> Option<String> {
        if let Some(v) = &self.settings.patch_group.value {
            return Some(v.clone());
        }
        let (found, _) = self.patch_group_tags(id).await;
        let mut values: Vec<&str> = found.iter().map(|f| f.value.as_str()).collect();
        values.sort();
        values.dedup();
        match values.as_slice() {
            [one] => Some(one.to_string()),
            _ => None,
        }
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
        self.shared
            .imds_tags
            .get_or_init(|| async {
                if self.host.mode != Mode::Ec2 {
                    return Ok(Vec::new());
                }
                if identity::imds_disabled_by_env() {
                    return Err(NotRead {
                        source: "IMDS instance tags",
                        why: "AWS_EC2_METADATA_DISABLED is true, so the instance metadata service is not asked".into(),
                    });
                }
                let read = async { tags::from_imds(self.imds().client()?).await };
                match read.await {
                    Ok(f) => Ok(f.into_iter().collect()),
                    Err(why) => Err(NotRead {
                        source: "IMDS instance tags",
                        why: why.to_string(),
                    }),
                }
            })
            .await
            .clone()
    }

    /// ec2:DescribeTags on EC2, ssm:ListTagsForResource on a hybrid node.
    pub async fn api_tags(&self, id: &Identity) -> TagSource {
        self.shared
            .api_tags
            .get_or_init(|| async {
                match id.mode {
                    Mode::Ec2 => self.ec2_tags(id).await.map_err(|why| NotRead {
                        source: "ec2:DescribeTags",
                        why: why.to_string(),
                    }),
                    Mode::Hybrid => {
                        let read = async {
                            let ssm = self.ssm_client(id).map_err(|e| e.to_string())?;
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
            .clone()
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
