//! Row-level security of a partition (or of a table retention detached or archived)
//! against its parent's: how they differ, and the changes that make them equal. Pure: the
//! planner explains drift with [`drift`], the executor applies [`changes`] to the state it
//! reads under lock; both compare policies the same way (every field, name included).

use crate::catalog::{Policy, RlsState};

/// One statement that brings a relation's RLS towards its parent's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RlsChange {
    Enable,
    Force,
    DropPolicy(Policy),
    CreatePolicy(Policy),
}

/// The changes that give `target` exactly `parent`'s row-level security. partwarden never
/// weakens: RLS the parent does not have is left on.
pub fn changes(parent: &RlsState, target: &RlsState) -> Vec<RlsChange> {
    let mut out = Vec::new();
    if parent.enabled && !target.enabled {
        out.push(RlsChange::Enable);
    }
    if parent.forced && !target.forced {
        out.push(RlsChange::Force);
    }
    for p in &target.policies {
        if !parent.policies.contains(p) {
            out.push(RlsChange::DropPolicy(p.clone()));
        }
    }
    for p in &parent.policies {
        if !target.policies.contains(p) {
            out.push(RlsChange::CreatePolicy(p.clone()));
        }
    }
    out
}

/// Why `target`'s row-level security differs from `parent`'s, one reason per difference;
/// empty exactly when [`changes`] is.
pub fn drift(parent: &RlsState, target: &RlsState, what: &str) -> Vec<String> {
    let mut why = Vec::new();
    if parent.enabled && !target.enabled {
        why.push(format!(
            "row-level security is disabled on the {what} but enabled on the parent"
        ));
    }
    if parent.forced && !target.forced {
        why.push(format!(
            "row-level security is not forced on the {what} but is on the parent"
        ));
    }
    for p in &parent.policies {
        match target.policies.iter().find(|c| c.name == p.name) {
            None => why.push(format!("policy {:?} is missing", p.name)),
            Some(c) if c != p => why.push(format!("policy {:?} differs from the parent's", p.name)),
            Some(_) => {}
        }
    }
    for c in &target.policies {
        if !parent.policies.iter().any(|p| p.name == c.name) {
            why.push(format!("policy {:?} is not on the parent", c.name));
        }
    }
    why
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(name: &str, qual: &str) -> Policy {
        Policy {
            name: name.into(),
            cmd: "ALL".into(),
            permissive: true,
            roles: vec!["PUBLIC".into()],
            qual: Some(qual.into()),
            with_check: None,
        }
    }

    #[test]
    fn drift_and_changes_agree() {
        let parent = RlsState {
            enabled: true,
            forced: true,
            policies: vec![policy("tenant", "tenant_id = x")],
        };
        let cases = [
            (parent.clone(), 0),
            (
                RlsState {
                    enabled: false,
                    ..parent.clone()
                },
                1,
            ),
            (
                RlsState {
                    forced: false,
                    ..parent.clone()
                },
                1,
            ),
            (
                RlsState {
                    policies: vec![],
                    ..parent.clone()
                },
                1,
            ),
            (
                RlsState {
                    policies: vec![policy("tenant", "true")],
                    ..parent.clone()
                },
                2, // dropped and created again
            ),
            (
                RlsState {
                    policies: vec![policy("tenant", "tenant_id = x"), policy("open", "true")],
                    ..parent.clone()
                },
                1,
            ),
        ];
        for (target, n) in cases {
            let c = changes(&parent, &target);
            assert_eq!(c.len(), n, "{target:?}");
            assert_eq!(
                c.is_empty(),
                drift(&parent, &target, "partition").is_empty()
            );
        }
    }
}
