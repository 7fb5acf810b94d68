//! The control side of ACLs: named ACLs, their bindings, the session
//! table, and publishing them into the tables workers read.
//!
//! Every change builds what it needs (a whole classifier for an ACL)
//! before it publishes, so workers switch from one complete version to the
//! next between bursts. Inserting or deleting single rules rebuilds the
//! ACL from its new rule list; its hit counters start again from zero.

use super::session::{SessionConfig, SessionTable};
use super::stage::{Acl, AclBinding, AclTables, Direction};
use super::{Action, Rule};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// An ACL in a runtime spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AclSpec {
    pub name: String,
    pub rules: Vec<Rule>,
}

/// A binding in a runtime spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AclBindSpec {
    pub port: String,
    pub dir: Direction,
    pub acl: String,
    /// For packets no rule matches.
    pub default: Action,
}

/// ACL part of a runtime spec.
#[derive(Clone, Debug, Default)]
pub struct AclConfig {
    pub acls: Vec<AclSpec>,
    pub bindings: Vec<AclBindSpec>,
    /// Session table parameters (created when any rule is stateful).
    pub sessions: SessionConfig,
}

/// Why an ACL change was refused (nothing changed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AclError {
    NoSuchAcl(String),
    NoSuchPort(String),
    /// A rule index out of range.
    NoSuchRule {
        acl: String,
        index: usize,
    },
    /// The ACL is bound and cannot be deleted.
    InUse(String),
    Invalid(String),
}

impl fmt::Display for AclError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AclError::NoSuchAcl(a) => write!(f, "no ACL named {a:?}"),
            AclError::NoSuchPort(p) => write!(f, "no port named {p:?}"),
            AclError::NoSuchRule { acl, index } => write!(f, "ACL {acl:?} has no rule {index}"),
            AclError::InUse(a) => write!(f, "ACL {a:?} is bound to a port; unbind it first"),
            AclError::Invalid(s) => f.write_str(s),
        }
    }
}

impl std::error::Error for AclError {}

/// A copy of the ACL definitions and bindings, to undo a failed change.
pub struct AclSnapshot {
    acls: BTreeMap<String, Arc<Acl>>,
    bindings: Vec<[Option<(String, Action)>; 2]>,
    sessions: Option<Arc<SessionTable>>,
}

/// Named ACLs and bindings; publishes [`AclTables`].
pub struct AclControl {
    ports: Vec<String>,
    workers: usize,
    acls: BTreeMap<String, Arc<Acl>>,
    /// Per port: (ingress, egress) binding as (ACL name, default).
    bindings: Vec<[Option<(String, Action)>; 2]>,
    session_cfg: SessionConfig,
    /// Created with the first permit-stateful rule, then kept (sessions
    /// outlive ACL changes); absent, the stage skips session lookups.
    sessions: Option<Arc<SessionTable>>,
}

fn check_rules(rules: &[Rule]) -> Result<(), AclError> {
    for (i, r) in rules.iter().enumerate() {
        if r.src.v6 != r.dst.v6 {
            return Err(AclError::Invalid(format!("rule {i}: source and destination are of different families")));
        }
        if r.src.len as u32 > r.src.bits() || r.dst.len as u32 > r.dst.bits() {
            return Err(AclError::Invalid(format!("rule {i}: prefix length too long")));
        }
        if r.sport.lo > r.sport.hi || r.dport.lo > r.dport.hi {
            return Err(AclError::Invalid(format!("rule {i}: port range low end above high end")));
        }
    }
    Ok(())
}

impl AclControl {
    /// Builds the ACLs and bindings of `cfg` for ports named `ports` (in
    /// port-id order) and `workers` workers.
    pub fn new(ports: &[String], workers: usize, cfg: &AclConfig) -> Result<AclControl, AclError> {
        let mut c = AclControl {
            ports: ports.to_vec(),
            workers,
            acls: BTreeMap::new(),
            bindings: vec![[None, None]; ports.len()],
            session_cfg: cfg.sessions,
            sessions: None,
        };
        for a in &cfg.acls {
            if c.acls.contains_key(&a.name) {
                return Err(AclError::Invalid(format!("ACL {:?} defined twice", a.name)));
            }
            c.set(&a.name, &a.rules)?;
        }
        for b in &cfg.bindings {
            c.bind(&b.port, b.dir, Some((&b.acl, b.default)))?;
        }
        Ok(c)
    }

    /// Creates or replaces ACL `name`.
    pub fn set(&mut self, name: &str, rules: &[Rule]) -> Result<(), AclError> {
        if name.is_empty() {
            return Err(AclError::Invalid("an ACL needs a name".into()));
        }
        check_rules(rules)?;
        if self.sessions.is_none() && rules.iter().any(|r| r.action == Action::PermitStateful) {
            self.sessions = Some(Arc::new(SessionTable::new(self.session_cfg)));
        }
        self.acls.insert(name.to_string(), Arc::new(Acl::build(name, rules, self.workers)));
        Ok(())
    }

    /// Inserts `rule` at `index` (0 = highest priority) of ACL `name`.
    pub fn insert_rule(&mut self, name: &str, index: usize, rule: Rule) -> Result<(), AclError> {
        let acl = self.acls.get(name).ok_or_else(|| AclError::NoSuchAcl(name.into()))?;
        let mut rules = acl.rules().to_vec();
        if index > rules.len() {
            return Err(AclError::NoSuchRule { acl: name.into(), index });
        }
        rules.insert(index, rule);
        self.set(name, &rules)
    }

    /// Deletes rule `index` of ACL `name`.
    pub fn delete_rule(&mut self, name: &str, index: usize) -> Result<(), AclError> {
        let acl = self.acls.get(name).ok_or_else(|| AclError::NoSuchAcl(name.into()))?;
        let mut rules = acl.rules().to_vec();
        if index >= rules.len() {
            return Err(AclError::NoSuchRule { acl: name.into(), index });
        }
        rules.remove(index);
        self.set(name, &rules)
    }

    /// Deletes ACL `name` (refused while bound).
    pub fn delete(&mut self, name: &str) -> Result<(), AclError> {
        if !self.acls.contains_key(name) {
            return Err(AclError::NoSuchAcl(name.into()));
        }
        if self.bindings.iter().flatten().flatten().any(|(a, _)| a == name) {
            return Err(AclError::InUse(name.into()));
        }
        self.acls.remove(name);
        Ok(())
    }

    /// Binds (or with `None` unbinds) an ACL to a port in one direction.
    pub fn bind(&mut self, port: &str, dir: Direction, acl: Option<(&str, Action)>) -> Result<(), AclError> {
        let p = self.ports.iter().position(|n| n == port).ok_or_else(|| AclError::NoSuchPort(port.into()))?;
        if let Some((a, _)) = acl {
            if !self.acls.contains_key(a) {
                return Err(AclError::NoSuchAcl(a.into()));
            }
        }
        self.bindings[p][dir as usize] = acl.map(|(a, d)| (a.to_string(), d));
        Ok(())
    }

    /// The current definitions, for [`AclControl::restore`].
    pub fn snapshot(&self) -> AclSnapshot {
        AclSnapshot { acls: self.acls.clone(), bindings: self.bindings.clone(), sessions: self.sessions.clone() }
    }

    pub fn restore(&mut self, s: AclSnapshot) {
        self.acls = s.acls;
        self.bindings = s.bindings;
        self.sessions = s.sessions;
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Acl>> {
        self.acls.get(name)
    }

    pub fn names(&self) -> Vec<String> {
        self.acls.keys().cloned().collect()
    }

    /// The session table, once a permit-stateful rule exists.
    pub fn sessions(&self) -> Option<&Arc<SessionTable>> {
        self.sessions.as_ref()
    }

    /// The tables to publish.
    pub fn view(&self) -> AclTables {
        let mk = |b: &Option<(String, Action)>| {
            b.as_ref().and_then(|(a, d)| self.acls.get(a).map(|acl| AclBinding { acl: acl.clone(), default: *d }))
        };
        AclTables {
            ingress: self.bindings.iter().map(|b| mk(&b[0])).collect(),
            egress: self.bindings.iter().map(|b| mk(&b[1])).collect(),
            sessions: self.sessions.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Key, Prefix, Range};
    use super::*;

    fn rule(dport: u16, action: Action) -> Rule {
        Rule { dport: Range::one(dport), proto: Some(17), ..Rule::any(false, action) }
    }

    fn key(dport: u16) -> Key {
        Key { src: 0x0a00_0001, dst: 0x0a01_0001, sport: 1000, dport, proto: 17, tcp_flags: 0, v6: false }
    }

    fn ctl() -> AclControl {
        let cfg = AclConfig {
            acls: vec![AclSpec { name: "a".into(), rules: vec![rule(53, Action::Deny), rule(80, Action::Permit)] }],
            bindings: vec![AclBindSpec {
                port: "p0".into(),
                dir: Direction::Ingress,
                acl: "a".into(),
                default: Action::Deny,
            }],
            ..Default::default()
        };
        AclControl::new(&["p0".into(), "p1".into()], 2, &cfg).expect("valid")
    }

    fn first(c: &AclControl, k: &Key) -> u32 {
        c.view().ingress[0].as_ref().expect("bound").acl.classifier().classify(k)
    }

    #[test]
    fn rules_insert_and_delete_in_priority_order() {
        let mut c = ctl();
        assert_eq!(first(&c, &key(80)), 1);
        // A new highest-priority rule for port 80 shifts the others down.
        c.insert_rule("a", 0, rule(80, Action::Deny)).expect("insert");
        assert_eq!(first(&c, &key(80)), 0);
        assert_eq!(first(&c, &key(53)), 1);
        c.delete_rule("a", 0).expect("delete");
        assert_eq!(first(&c, &key(80)), 1);
        assert_eq!(c.get("a").expect("a").rules().len(), 2);
    }

    #[test]
    fn wrong_calls_get_errors_and_change_nothing() {
        let mut c = ctl();
        let before = c.get("a").expect("a").rules().to_vec();
        assert_eq!(
            c.insert_rule("a", 3, rule(1, Action::Permit)),
            Err(AclError::NoSuchRule { acl: "a".into(), index: 3 })
        );
        assert_eq!(c.delete_rule("a", 2), Err(AclError::NoSuchRule { acl: "a".into(), index: 2 }));
        assert_eq!(c.delete_rule("b", 0), Err(AclError::NoSuchAcl("b".into())));
        assert_eq!(c.delete("a"), Err(AclError::InUse("a".into())));
        assert_eq!(c.bind("p9", Direction::Egress, Some(("a", Action::Deny))), Err(AclError::NoSuchPort("p9".into())));
        assert_eq!(c.bind("p1", Direction::Egress, Some(("zz", Action::Deny))), Err(AclError::NoSuchAcl("zz".into())));
        let mut bad = rule(1, Action::Permit);
        bad.dport = Range { lo: 9, hi: 3 };
        assert!(matches!(c.set("a", &[bad]), Err(AclError::Invalid(_))));
        let mut mixed = rule(1, Action::Permit);
        mixed.dst = Prefix::any(true);
        assert!(matches!(c.set("a", &[mixed]), Err(AclError::Invalid(_))));
        assert_eq!(c.get("a").expect("a").rules(), &before[..]);
        // Unbound, it can go.
        c.bind("p0", Direction::Ingress, None).expect("unbind");
        c.delete("a").expect("delete");
        assert!(c.view().ingress.iter().all(Option::is_none));
    }

    #[test]
    fn the_session_table_exists_once_a_rule_is_stateful() {
        let mut c = ctl();
        assert!(c.sessions().is_none() && c.view().sessions.is_none());
        c.set("s", &[rule(1, Action::PermitStateful)]).expect("set");
        assert!(c.sessions().is_some() && c.view().sessions.is_some());
    }
}
