//! Accountable issuance (SPEC.md §8.4): a health authority's operator accounts,
//! their roles, and the rule that no role grants more than its holder has.
//!
//! Accounts live in the gateway's sled tree under [`keyspace::OPERATOR`]
//! (name → JSON record with an Argon2id password hash, see [`password`]).
//! Every change is appended to the node's transparency log as an
//! `account` entry, durably, before it is written: a change the log does not
//! show never takes effect. Issuance ([`issuance`]) logs `codes-issued` the
//! same way before a code is shown.
//!
//! The rules, checked here for every change:
//! - only an enabled account with `manage-operators` changes accounts (the
//!   node's CLI, run by whoever runs the node, bootstraps them);
//! - it may give, take or touch only roles it holds itself: the target's roles
//!   before and after the change are within its own, so it can never raise its
//!   own roles or act on an account more powerful than itself;
//! - the last enabled holder of `manage-operators` cannot lose it.

pub mod cli;
pub mod issuance;
pub mod password;
pub mod session;
pub mod statistics;
pub mod throttle;

use std::collections::BTreeSet;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use traceless_protocol::log::entry::validate_actor;
use traceless_protocol::log::{AccountAction, Event, OperatorRole};

use crate::log::{LogStoreError, TransparencyLog};
use crate::storage::keyspace::{operator_key, OPERATOR};
use crate::storage::StorageError;

/// The actor name of changes made by the node's CLI.
pub const CLI_ACTOR: &str = "operator-cli";

/// A set of roles.
pub type Roles = BTreeSet<OperatorRole>;

/// Parses `issue-codes,read-audit` (comma-separated role words).
pub fn parse_roles(s: &str) -> Result<Roles, OperatorError> {
    s.split(',')
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .map(|w| OperatorRole::parse(w).ok_or_else(|| OperatorError::UnknownRole(w.to_owned())))
        .collect()
}

/// Roles as words, comma-separated.
pub fn roles_text(roles: &Roles) -> String {
    roles.iter().map(|r| r.word()).collect::<Vec<_>>().join(",")
}

/// Why an account operation was refused; says what was wrong.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    /// Not 1..=64 of `[a-z0-9._-]`.
    #[error("account name {0:?} is not 1..=64 of [a-z0-9._-]")]
    BadName(String),
    /// Not a role word.
    #[error("unknown role {0:?} (roles: issue-codes, manage-operators, read-audit)")]
    UnknownRole(String),
    /// Too short.
    #[error("password is shorter than {} characters", password::MIN_PASSWORD_LEN)]
    WeakPassword,
    /// The name is taken.
    #[error("account {0:?} exists")]
    Exists(String),
    /// No such account.
    #[error("no account {0:?}")]
    NoSuchAccount(String),
    /// The actor lacks a role the operation needs.
    #[error("this needs the role {}", .0.word())]
    NotPermitted(OperatorRole),
    /// The actor would grant, take or touch a role it does not hold.
    #[error("roles beyond your own: {}", roles_text(.0))]
    Escalation(Roles),
    /// The change would leave no enabled holder of `manage-operators`.
    #[error("this would leave no enabled account with manage-operators")]
    LastManager,
    /// The audit entry could not be appended: nothing changed.
    #[error("audit log: {0}")]
    Log(#[from] LogStoreError),
    /// Storage failed.
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
}

impl From<sled::Error> for OperatorError {
    fn from(e: sled::Error) -> Self {
        OperatorError::Storage(e.into())
    }
}

/// One operator account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    /// Its name (the log's actor).
    pub name: String,
    /// What it may do.
    pub roles: Roles,
    /// Disabled accounts cannot log in.
    pub disabled: bool,
    /// Argon2id PHC string.
    phc: String,
}

/// An account as stored (JSON; the name is the key).
#[derive(Serialize, Deserialize)]
struct Record {
    roles: String,
    disabled: bool,
    phc: String,
}

impl Account {
    fn encode(&self) -> Vec<u8> {
        let r = Record {
            roles: roles_text(&self.roles),
            disabled: self.disabled,
            phc: self.phc.clone(),
        };
        serde_json::to_vec(&r).unwrap_or_default()
    }

    fn decode(name: &[u8], v: &[u8]) -> Result<Account, OperatorError> {
        let corrupt = || OperatorError::Storage(StorageError::Corrupt("operator"));
        let r: Record = serde_json::from_slice(v).map_err(|_| corrupt())?;
        Ok(Account {
            name: String::from_utf8(name.to_vec()).map_err(|_| corrupt())?,
            roles: parse_roles(&r.roles).map_err(|_| corrupt())?,
            disabled: r.disabled,
            phc: r.phc,
        })
    }

    /// Whether it holds `role` and is enabled.
    pub fn may(&self, role: OperatorRole) -> bool {
        !self.disabled && self.roles.contains(&role)
    }
}

/// Who makes a change: the node's CLI (bootstrap) or a logged-in operator.
#[derive(Clone, Copy, Debug)]
pub enum Actor<'a> {
    /// `traceless-node operator add`, run by whoever runs the node.
    Cli,
    /// An operator, as stored now.
    Operator(&'a Account),
}

impl Actor<'_> {
    fn name(&self) -> &str {
        match self {
            Actor::Cli => CLI_ACTOR,
            Actor::Operator(a) => &a.name,
        }
    }

    /// Refuses unless the actor manages operators and holds every role in
    /// `touched`.
    fn check(&self, touched: &Roles) -> Result<(), OperatorError> {
        let Actor::Operator(a) = self else {
            return Ok(());
        };
        if !a.may(OperatorRole::ManageOperators) {
            return Err(OperatorError::NotPermitted(OperatorRole::ManageOperators));
        }
        let beyond: Roles = touched.difference(&a.roles).copied().collect();
        if beyond.is_empty() {
            Ok(())
        } else {
            Err(OperatorError::Escalation(beyond))
        }
    }
}

/// The gateway's operator accounts.
pub struct Operators {
    db: sled::Db,
    /// Serialises changes (each reads, checks, then writes).
    lock: Mutex<()>,
}

impl Operators {
    /// The accounts in `db` (the gateway's sled tree).
    pub fn open(db: sled::Db) -> Self {
        Operators {
            db,
            lock: Mutex::new(()),
        }
    }

    /// Account `name`, as stored.
    pub fn get(&self, name: &str) -> Result<Option<Account>, OperatorError> {
        match self.db.get(operator_key(name))? {
            Some(v) => Ok(Some(Account::decode(name.as_bytes(), &v)?)),
            None => Ok(None),
        }
    }

    /// Every account, by name.
    pub fn list(&self) -> Result<Vec<Account>, OperatorError> {
        self.db
            .scan_prefix([OPERATOR])
            .map(|item| {
                let (k, v) = item?;
                Account::decode(&k[1..], &v)
            })
            .collect()
    }

    /// The account `name` if `password` is its password and it is enabled.
    /// Unknown, disabled and wrong all answer `None` after one Argon2id
    /// verification each, so that neither the answer nor its time tells them
    /// apart.
    pub fn login(&self, name: &str, password: &str) -> Result<Option<Account>, OperatorError> {
        let account = if validate_actor(name).is_ok() {
            self.get(name)?
        } else {
            None
        };
        let phc = match &account {
            Some(a) if !a.disabled => a.phc.as_str(),
            _ => password::decoy(),
        };
        let ok = password::verify(password, phc);
        Ok(account.filter(|a| ok && !a.disabled))
    }

    fn put(&self, account: &Account) -> Result<(), OperatorError> {
        self.db
            .insert(operator_key(&account.name), account.encode())?;
        self.db.flush()?;
        Ok(())
    }

    /// Appends the audit entry, then writes the account: the log shows every
    /// change that took effect.
    fn commit(
        &self,
        log: &TransparencyLog,
        actor: Actor<'_>,
        action: AccountAction,
        account: &Account,
        now: u64,
    ) -> Result<(), OperatorError> {
        log.append(&Event::AccountChanged {
            actor: actor.name().to_owned(),
            action,
            target: account.name.clone(),
            roles: if account.disabled {
                Vec::new()
            } else {
                account.roles.iter().copied().collect()
            },
            at: now,
        })?;
        self.put(account)
    }

    fn existing(&self, name: &str) -> Result<Account, OperatorError> {
        self.get(name)?
            .ok_or_else(|| OperatorError::NoSuchAccount(name.to_owned()))
    }

    /// Whether an enabled account other than `except` manages operators.
    fn other_manager(&self, except: &str) -> Result<bool, OperatorError> {
        Ok(self
            .list()?
            .iter()
            .any(|a| a.name != except && a.may(OperatorRole::ManageOperators)))
    }

    /// Creates account `name` with `roles` and `password`.
    pub fn create(
        &self,
        log: &TransparencyLog,
        actor: Actor<'_>,
        name: &str,
        roles: Roles,
        password: &str,
        now: u64,
    ) -> Result<Account, OperatorError> {
        validate_actor(name).map_err(|_| OperatorError::BadName(name.to_owned()))?;
        if password.chars().count() < password::MIN_PASSWORD_LEN {
            return Err(OperatorError::WeakPassword);
        }
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        actor.check(&roles)?;
        if self.get(name)?.is_some() {
            return Err(OperatorError::Exists(name.to_owned()));
        }
        let account = Account {
            name: name.to_owned(),
            roles,
            disabled: false,
            phc: password::hash(password),
        };
        self.commit(log, actor, AccountAction::Created, &account, now)?;
        Ok(account)
    }

    /// Sets `target`'s roles to `roles`.
    pub fn set_roles(
        &self,
        log: &TransparencyLog,
        actor: Actor<'_>,
        target: &str,
        roles: Roles,
        now: u64,
    ) -> Result<Account, OperatorError> {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut account = self.existing(target)?;
        actor.check(&account.roles.union(&roles).copied().collect())?;
        if account.may(OperatorRole::ManageOperators)
            && !roles.contains(&OperatorRole::ManageOperators)
            && !self.other_manager(target)?
        {
            return Err(OperatorError::LastManager);
        }
        account.roles = roles;
        self.commit(log, actor, AccountAction::RolesChanged, &account, now)?;
        Ok(account)
    }

    /// Disables `target`.
    pub fn disable(
        &self,
        log: &TransparencyLog,
        actor: Actor<'_>,
        target: &str,
        now: u64,
    ) -> Result<Account, OperatorError> {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut account = self.existing(target)?;
        actor.check(&account.roles)?;
        if account.may(OperatorRole::ManageOperators) && !self.other_manager(target)? {
            return Err(OperatorError::LastManager);
        }
        account.disabled = true;
        self.commit(log, actor, AccountAction::Disabled, &account, now)?;
        Ok(account)
    }

    /// Replaces `target`'s password.
    pub fn reset_password(
        &self,
        log: &TransparencyLog,
        actor: Actor<'_>,
        target: &str,
        password: &str,
        now: u64,
    ) -> Result<Account, OperatorError> {
        if password.chars().count() < password::MIN_PASSWORD_LEN {
            return Err(OperatorError::WeakPassword);
        }
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut account = self.existing(target)?;
        actor.check(&account.roles)?;
        account.phc = password::hash(password);
        self.commit(log, actor, AccountAction::PasswordReset, &account, now)?;
        Ok(account)
    }
}

/// What the staff pages share: the accounts, the live sessions and the login
/// throttle.
pub struct Staff {
    /// The accounts.
    pub accounts: Operators,
    /// Logged-in operators.
    pub sessions: session::Sessions,
    /// Failed logins.
    pub throttle: throttle::Throttle,
}

impl Staff {
    /// The staff state over the gateway's sled tree.
    pub fn open(db: sled::Db) -> Self {
        Staff {
            accounts: Operators::open(db),
            sessions: session::Sessions::default(),
            throttle: throttle::Throttle::default(),
        }
    }
}

/// The log's audit entries (account changes and issuance), with their index.
pub fn audit_entries(log: &TransparencyLog) -> Result<Vec<(u64, Event)>, LogStoreError> {
    Ok(log
        .all_entries()?
        .iter()
        .enumerate()
        .filter(|(_, e)| e.starts_with(b"account ") || e.starts_with(b"codes-issued "))
        .filter_map(|(i, e)| match Event::decode(e) {
            Ok(ev @ (Event::AccountChanged { .. } | Event::CodesIssued { .. })) => {
                Some((i as u64, ev))
            }
            _ => None,
        })
        .collect())
}
