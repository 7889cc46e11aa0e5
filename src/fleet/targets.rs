//! Which nodes a maintenance window's patch task reaches, as SSM resolves
//! its targets (docs/fleet.md cites AWS's pages): a registered target
//! reaches a node that matches every one of its keys, where the values of
//! one key are alternatives; separate registered targets are alternatives;
//! a task reaches the registered targets it names (`WindowTargetIds`) or
//! the nodes it names (`InstanceIds`).
//!
//! Pure: what a node's listing already tells (its instance ID, the group
//! tag it was listed under) decides here; what it does not (another tag)
//! is asked of SSM with one `DescribeInstanceInformation` whose tag
//! filters SSM ANDs, as the registered target does.

use crate::fleet::ssm::NodeFilter;

/// One condition of a registered target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// `InstanceIds`: the node is one of these.
    InstanceIds(Vec<String>),
    /// `tag:<key>`: the node carries the tag with one of the values.
    Tag { key: String, values: Vec<String> },
    /// `tag-key`: the node carries one of these tag keys, any value.
    TagKey(Vec<String>),
    /// `resource-groups:Name`: the node is a member of one of these
    /// resource groups; replaced by the members' instance IDs once the
    /// groups are read (`resolve_groups`).
    ResourceGroup(Vec<String>),
    /// `resource-groups:ResourceTypeFilters`: the member types a
    /// resource-group target keeps.
    ResourceTypes(Vec<String>),
    /// What ssm-preflight cannot resolve to nodes, as written.
    Unresolved { key: String, values: Vec<String> },
}

/// `InstanceIds = *`: an association that targets every managed node.
pub const EVERY_NODE: &str = "*";

/// The resource types of managed nodes in a resource group.
const NODE_TYPES: &[&str] = &["AWS::EC2::Instance", "AWS::SSM::ManagedInstance"];

/// A member of a resource group, as `ListGroupResources` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub resource_type: String,
    pub arn: String,
}

impl Member {
    /// Its node ID when it is a managed node: the ARN's last part
    /// (`…:instance/i-0abc`, `…:managed-instance/mi-0abc`).
    fn node_id(&self, types: Option<&[String]>) -> Option<&str> {
        let kept = match types {
            Some(t) => t.contains(&self.resource_type),
            None => true,
        };
        if !kept || !NODE_TYPES.contains(&self.resource_type.as_str()) {
            return None;
        }
        self.arn.rsplit('/').next().filter(|id| !id.is_empty())
    }
}

impl Condition {
    pub fn parse(key: &str, values: &[String]) -> Condition {
        let values = values.to_vec();
        if key.eq_ignore_ascii_case("InstanceIds") {
            Condition::InstanceIds(values)
        } else if key == "tag-key" {
            Condition::TagKey(values)
        } else if key == "resource-groups:Name" {
            Condition::ResourceGroup(values)
        } else if key == "resource-groups:ResourceTypeFilters" {
            Condition::ResourceTypes(values)
        } else if let Some(tag) = key.strip_prefix("tag:") {
            Condition::Tag {
                key: tag.to_string(),
                values,
            }
        } else {
            Condition::Unresolved {
                key: key.to_string(),
                values,
            }
        }
    }

    /// The condition as a `DescribeInstanceInformation` tag filter (tag
    /// filters only: SSM refuses a tag filter beside another kind).
    fn tag_filter(&self) -> Option<NodeFilter> {
        match self {
            Condition::Tag { key, values } => Some(NodeFilter {
                key: format!("tag:{key}"),
                values: values.clone(),
            }),
            Condition::TagKey(keys) => Some(NodeFilter {
                key: "tag-key".into(),
                values: keys.clone(),
            }),
            _ => None,
        }
    }
}

/// A target registered with a window (`WindowTargetId`), its conditions
/// all to be met.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RegisteredTarget {
    pub id: String,
    pub conditions: Vec<Condition>,
}

impl RegisteredTarget {
    pub fn new(id: &str, raw: &[(String, Vec<String>)]) -> RegisteredTarget {
        RegisteredTarget {
            id: id.to_string(),
            conditions: raw.iter().map(|(k, v)| Condition::parse(k, v)).collect(),
        }
    }

    /// Whether it names something and ssm-preflight can resolve all of it
    /// (a resource group only once its members were read).
    fn resolvable(&self) -> bool {
        !self.conditions.is_empty() && self.unresolved().is_empty()
    }

    /// What it names that ssm-preflight cannot resolve, as `key = values`.
    pub fn unresolved(&self) -> Vec<String> {
        self.conditions
            .iter()
            .filter_map(|c| match c {
                Condition::Unresolved { key, values } => {
                    Some(format!("{key} = {}", values.join(", ")))
                }
                Condition::ResourceGroup(names) => {
                    Some(format!("resource-groups:Name = {}", names.join(", ")))
                }
                Condition::ResourceTypes(types) => Some(format!(
                    "resource-groups:ResourceTypeFilters = {}",
                    types.join(", ")
                )),
                _ => None,
            })
            .collect()
    }

    /// The resource groups it names.
    pub fn resource_groups(&self) -> impl Iterator<Item = &String> {
        self.conditions.iter().flat_map(|c| match c {
            Condition::ResourceGroup(names) => names.as_slice(),
            _ => &[],
        })
    }

    /// Its resource-group condition replaced by the instance IDs of the
    /// groups' managed nodes (of the types its `ResourceTypeFilters` keep),
    /// when every group it names was read (`members`, by group name); a
    /// group that could not be read leaves it unresolved.
    pub fn resolve_groups(&mut self, members: &std::collections::HashMap<String, Vec<Member>>) {
        let types: Option<Vec<String>> = self.conditions.iter().find_map(|c| match c {
            Condition::ResourceTypes(t) => Some(t.clone()),
            _ => None,
        });
        let mut resolved = false;
        for c in &mut self.conditions {
            let Condition::ResourceGroup(names) = c else {
                continue;
            };
            let Some(read): Option<Vec<&Vec<Member>>> =
                names.iter().map(|n| members.get(n)).collect()
            else {
                return;
            };
            let mut ids: Vec<String> = read
                .into_iter()
                .flatten()
                .filter_map(|m| m.node_id(types.as_deref()))
                .map(str::to_string)
                .collect();
            ids.sort();
            ids.dedup();
            *c = Condition::InstanceIds(ids);
            resolved = true;
        }
        if resolved {
            self.conditions
                .retain(|c| !matches!(c, Condition::ResourceTypes(_)));
        }
    }

    /// How to list every node it reaches: its tag conditions as one
    /// listing (SSM ANDs them), and the instance IDs to keep from it (or
    /// to list, when it has no tag condition). None: it names something
    /// ssm-preflight cannot resolve, or nothing.
    pub fn listing(&self) -> Option<(Vec<NodeFilter>, Option<Vec<String>>)> {
        if !self.resolvable() {
            return None;
        }
        let tags: Vec<NodeFilter> = self
            .conditions
            .iter()
            .filter_map(Condition::tag_filter)
            .collect();
        // Several InstanceIds conditions: a node must be in each (`*`,
        // an association's "every node", narrows nothing).
        let mut ids: Option<Vec<String>> = None;
        for c in &self.conditions {
            if let Condition::InstanceIds(v) = c {
                if v.iter().any(|i| i == EVERY_NODE) {
                    continue;
                }
                ids = Some(match ids {
                    None => v.clone(),
                    Some(prev) => prev.into_iter().filter(|i| v.contains(i)).collect(),
                });
            }
        }
        Some((tags, ids))
    }
}

/// Whether a target reaches a node of a patch group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    Yes,
    No,
    /// Undecided by what the group's listing tells: the node is reached if
    /// it is in this listing (the target's tag conditions, narrowed to the
    /// group by the tag the node was listed under).
    IfListed(Vec<NodeFilter>),
}

/// Whether `target` reaches node `id` of patch group `group`, which was
/// listed under the group tag keys `listed_under` (`tag:Patch Group`,
/// `tag:PatchGroup`; a node's tag has one value, so a listing under a key
/// says that key's value is `group`).
pub fn reach(target: &RegisteredTarget, group: &str, id: &str, listed_under: &[&str]) -> Reach {
    if !target.resolvable() {
        return Reach::No;
    }
    let listed = |key: &str| {
        listed_under
            .iter()
            .any(|l| l.strip_prefix("tag:") == Some(key))
    };
    let mut undecided = false;
    for c in &target.conditions {
        match c {
            Condition::InstanceIds(ids) => {
                if !ids.iter().any(|i| i == id || i == EVERY_NODE) {
                    return Reach::No;
                }
            }
            Condition::Tag { key, values } => {
                if listed(key) {
                    if !values.iter().any(|v| v == group) {
                        return Reach::No;
                    }
                } else {
                    undecided = true;
                }
            }
            Condition::TagKey(keys) => {
                if !keys.iter().any(|k| listed(k)) {
                    undecided = true;
                }
            }
            Condition::ResourceGroup(_)
            | Condition::ResourceTypes(_)
            | Condition::Unresolved { .. } => return Reach::No,
        }
    }
    if !undecided {
        return Reach::Yes;
    }
    let mut filters: Vec<NodeFilter> = target
        .conditions
        .iter()
        .filter_map(Condition::tag_filter)
        .collect();
    // Narrowed to the group: a listing of the group's own nodes, not of
    // every node that carries, say, Role=web.
    if let Some(key) = listed_under.first() {
        if !filters.iter().any(|f| f.key == *key) {
            filters.push(NodeFilter {
                key: key.to_string(),
                values: vec![group.to_string()],
            });
        }
    }
    // One question per distinct set, whatever order it was reached in.
    filters.sort_by(|a, b| a.key.cmp(&b.key));
    Reach::IfListed(filters)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PG: &str = "tag:Patch Group";
    const PG2: &str = "tag:PatchGroup";

    fn target(raw: &[(&str, &[&str])]) -> RegisteredTarget {
        let raw: Vec<(String, Vec<String>)> = raw
            .iter()
            .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
            .collect();
        RegisteredTarget::new("wt-1", &raw)
    }

    #[test]
    fn a_window_on_one_key_does_not_reach_the_nodes_tagged_under_the_other() {
        // Issue #26 item 1: tag:PatchGroup=dev reached every dev node.
        let t = target(&[(PG2, &["dev"])]);
        assert_eq!(reach(&t, "dev", "i-1", &[PG2]), Reach::Yes);
        // Tagged `Patch Group = dev` only: reached only if it also carries
        // PatchGroup = dev, which the listing answers.
        let asked = reach(&t, "dev", "i-2", &[PG]);
        assert_eq!(
            asked,
            Reach::IfListed(vec![
                NodeFilter {
                    key: PG.into(),
                    values: vec!["dev".into()]
                },
                NodeFilter {
                    key: PG2.into(),
                    values: vec!["dev".into()]
                },
            ])
        );
        // Another value of the same key: not reached.
        let other = target(&[(PG, &["prod"])]);
        assert_eq!(reach(&other, "dev", "i-2", &[PG]), Reach::No);
    }

    #[test]
    fn every_key_of_one_target_must_match_and_values_are_alternatives() {
        // Issue #26 item 2: the keys of one target were OR-ed.
        let t = target(&[(PG, &["prod", "staging"]), ("tag:Role", &["web"])]);
        match reach(&t, "staging", "i-1", &[PG]) {
            Reach::IfListed(f) => {
                assert_eq!(f.len(), 2, "{f:?}");
                assert_eq!(f[0].key, PG);
                assert_eq!(f[1].key, "tag:Role");
                assert_eq!(f[0].values, ["prod", "staging"]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(reach(&t, "dev", "i-1", &[PG]), Reach::No);
        let ids = target(&[("InstanceIds", &["i-1", "i-2"])]);
        assert_eq!(reach(&ids, "dev", "i-2", &[PG]), Reach::Yes);
        assert_eq!(reach(&ids, "dev", "i-3", &[PG]), Reach::No);
        let both = target(&[("InstanceIds", &["i-1"]), (PG, &["dev"])]);
        assert_eq!(reach(&both, "dev", "i-1", &[PG]), Reach::Yes);
        assert_eq!(reach(&both, "dev", "i-9", &[PG]), Reach::No);
    }

    #[test]
    fn tag_keys_and_resource_groups() {
        let t = target(&[("tag-key", &["Patch Group"])]);
        assert_eq!(reach(&t, "dev", "i-1", &[PG]), Reach::Yes);
        assert!(matches!(
            reach(&t, "dev", "i-1", &[PG2]),
            Reach::IfListed(_)
        ));
        let rg = target(&[("resource-groups:Name", &["web-servers"])]);
        assert_eq!(reach(&rg, "dev", "i-1", &[PG]), Reach::No);
        assert_eq!(rg.unresolved(), vec!["resource-groups:Name = web-servers"]);
        assert_eq!(rg.listing(), None);
        assert_eq!(reach(&target(&[]), "dev", "i-1", &[PG]), Reach::No);
    }

    #[test]
    fn a_resource_group_reaches_its_managed_nodes_once_read() {
        let member = |t: &str, arn: &str| Member {
            resource_type: t.into(),
            arn: arn.into(),
        };
        let members: std::collections::HashMap<String, Vec<Member>> = [(
            "web-servers".to_string(),
            vec![
                member(
                    "AWS::EC2::Instance",
                    "arn:aws:ec2:eu-west-1:123456789012:instance/i-1",
                ),
                member(
                    "AWS::SSM::ManagedInstance",
                    "arn:aws:ssm:eu-west-1:123456789012:managed-instance/mi-2",
                ),
                member("AWS::S3::Bucket", "arn:aws:s3:::i-3"),
            ],
        )]
        .into();
        let mut rg = target(&[("resource-groups:Name", &["web-servers"])]);
        rg.resolve_groups(&members);
        assert_eq!(reach(&rg, "dev", "i-1", &[PG]), Reach::Yes);
        assert_eq!(reach(&rg, "dev", "mi-2", &[PG]), Reach::Yes);
        assert_eq!(reach(&rg, "dev", "i-3", &[PG]), Reach::No);
        assert!(rg.unresolved().is_empty());
        // Its ResourceTypeFilters keep EC2 instances only, and go.
        let mut ec2 = target(&[
            ("resource-groups:Name", &["web-servers"]),
            (
                "resource-groups:ResourceTypeFilters",
                &["AWS::EC2::Instance"],
            ),
        ]);
        ec2.resolve_groups(&members);
        assert_eq!(
            ec2.conditions,
            vec![Condition::InstanceIds(vec!["i-1".into()])]
        );
        // A group that could not be read stays unresolved, and reaches none.
        let mut unread = target(&[("resource-groups:Name", &["web-servers", "db"])]);
        unread.resolve_groups(&members);
        assert_eq!(reach(&unread, "dev", "i-1", &[PG]), Reach::No);
        assert_eq!(
            unread.unresolved(),
            vec!["resource-groups:Name = web-servers, db"]
        );
        assert_eq!(
            unread.resource_groups().collect::<Vec<_>>(),
            ["web-servers", "db"]
        );
    }

    #[test]
    fn a_target_is_listed_with_its_tags_anded_and_its_ids_kept() {
        let t = target(&[
            (PG, &["prod"]),
            ("tag:Role", &["web"]),
            ("InstanceIds", &["i-1", "i-2"]),
        ]);
        let (filters, ids) = t.listing().unwrap();
        assert_eq!(filters.len(), 2);
        assert_eq!(ids, Some(vec!["i-1".to_string(), "i-2".to_string()]));
        let only_ids = target(&[("InstanceIds", &["i-1"])]);
        assert_eq!(only_ids.listing(), Some((vec![], Some(vec!["i-1".into()]))));
    }
}
