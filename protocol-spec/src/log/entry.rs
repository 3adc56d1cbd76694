//! What a log leaf holds: one [`Event`], as one line of text
//! (`<kind> <field> <field> ...\n`, fields separated by one space), so that a
//! citizen reading `/v1/log/entries` can read it too. Decoding refuses anything
//! that does not re-encode to the same bytes, so each event has one leaf hash.
//!
//! An event never holds a key, a code, a patient or an address: publications
//! carry batch metadata, deletions the node's signed deletion record, issuance a
//! count and an operator's account name.

use base64::prelude::{Engine, BASE64_STANDARD};

use super::tree::Hash;
use super::{hex_hash, parse_hex_hash, LogError};
use crate::wire::{validate_origin, SignedDeletionRecord, MAX_DELETION_RECORD_LEN};

/// Largest encoded entry (a deletion record in base64 and its kinds).
pub const MAX_ENTRY_LEN: usize = MAX_DELETION_RECORD_LEN / 3 * 4 + 4096;

/// Longest operator account name in an issuance entry.
pub const MAX_ACTOR_LEN: usize = 64;

/// Which form a publication took.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PublicationForm {
    /// A signed key batch (its `sequence`).
    Batch,
    /// A revision of a signed day filter (its `revision` as sequence).
    Filter,
    /// A signed venue warning batch (its warning `sequence`; `key_count` its
    /// warnings, one per traced hour slot; `day` the day of its `createdAt`).
    Warning,
}

impl PublicationForm {
    fn word(self) -> &'static str {
        match self {
            PublicationForm::Batch => "batch",
            PublicationForm::Filter => "filter",
            PublicationForm::Warning => "warning",
        }
    }

    fn parse(s: &str) -> Result<Self, LogError> {
        Ok(match s {
            "batch" => PublicationForm::Batch,
            "filter" => PublicationForm::Filter,
            "warning" => PublicationForm::Warning,
            _ => return Err(bad(format!("unknown publication form {s:?}"))),
        })
    }
}

/// What a deletion removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeletionKind {
    /// Key batches.
    Batch,
    /// Day filters.
    Filter,
    /// A gateway's filter entries.
    Entries,
    /// Upload codes.
    Codes,
    /// Venue warning batches (ranges of warning sequences, `key_count` their
    /// warnings, `day` the day of their `createdAt`).
    Warnings,
}

impl DeletionKind {
    fn word(self) -> &'static str {
        match self {
            DeletionKind::Batch => "batch",
            DeletionKind::Filter => "filter",
            DeletionKind::Entries => "entries",
            DeletionKind::Codes => "codes",
            DeletionKind::Warnings => "warnings",
        }
    }

    fn parse(s: &str) -> Result<Self, LogError> {
        Ok(match s {
            "batch" => DeletionKind::Batch,
            "filter" => DeletionKind::Filter,
            "entries" => DeletionKind::Entries,
            "codes" => DeletionKind::Codes,
            "warnings" => DeletionKind::Warnings,
            _ => return Err(bad(format!("unknown deletion kind {s:?}"))),
        })
    }
}

/// A permission of a health authority's operator account (SPEC.md §8.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OperatorRole {
    /// May issue upload codes.
    IssueCodes,
    /// May create and change operator accounts (never beyond its own roles).
    ManageOperators,
    /// May read the audit entries.
    ReadAudit,
}

impl OperatorRole {
    /// Every role, in canonical order.
    pub const ALL: [OperatorRole; 3] = [
        OperatorRole::IssueCodes,
        OperatorRole::ManageOperators,
        OperatorRole::ReadAudit,
    ];

    /// The role's word (`issue-codes`, `manage-operators`, `read-audit`).
    pub fn word(self) -> &'static str {
        match self {
            OperatorRole::IssueCodes => "issue-codes",
            OperatorRole::ManageOperators => "manage-operators",
            OperatorRole::ReadAudit => "read-audit",
        }
    }

    /// The role of a word.
    pub fn parse(s: &str) -> Option<Self> {
        OperatorRole::ALL.into_iter().find(|r| r.word() == s)
    }
}

/// What happened to an operator account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccountAction {
    /// The account was created (with the entry's roles).
    Created,
    /// Its roles were set to the entry's roles.
    RolesChanged,
    /// It can no longer log in.
    Disabled,
    /// Its password was replaced.
    PasswordReset,
}

impl AccountAction {
    /// The action's word.
    pub fn word(self) -> &'static str {
        match self {
            AccountAction::Created => "created",
            AccountAction::RolesChanged => "roles-changed",
            AccountAction::Disabled => "disabled",
            AccountAction::PasswordReset => "password-reset",
        }
    }

    fn parse(s: &str) -> Result<Self, LogError> {
        Ok(match s {
            "created" => AccountAction::Created,
            "roles-changed" => AccountAction::RolesChanged,
            "disabled" => AccountAction::Disabled,
            "password-reset" => AccountAction::PasswordReset,
            _ => return Err(bad(format!("unknown account action {s:?}"))),
        })
    }
}

/// Roles as an entry field: comma-separated in canonical order, `-` for none.
fn roles_field(roles: &[OperatorRole]) -> String {
    if roles.is_empty() {
        "-".to_owned()
    } else {
        roles.iter().map(|r| r.word()).collect::<Vec<_>>().join(",")
    }
}

fn parse_roles(s: &str) -> Result<Vec<OperatorRole>, LogError> {
    if s == "-" {
        return Ok(Vec::new());
    }
    let roles: Vec<OperatorRole> = s
        .split(',')
        .map(|w| OperatorRole::parse(w).ok_or_else(|| bad(format!("unknown role {w:?}"))))
        .collect::<Result<_, _>>()?;
    // One spelling per set: canonical order, no repeats.
    if !roles.windows(2).all(|w| w[0] < w[1]) {
        return Err(LogError::NonCanonical("log entry roles"));
    }
    Ok(roles)
}

/// One logged event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// This node stored (and serves) a batch or a filter revision.
    Published {
        /// Batch or filter.
        form: PublicationForm,
        /// Authority id.
        origin: String,
        /// Batch sequence number or filter revision.
        sequence: u64,
        /// UTC day of the keys.
        day: u32,
        /// Keys in the batch, entries in the filter.
        key_count: u64,
        /// SHA-256 of the signed bytes as served.
        content_id: Hash,
        /// When this node stored it, unix seconds.
        at: u64,
    },
    /// A retention run: the node's signed deletion record (SPEC.md §5.5), which
    /// stays verifiable on its own, and what kind each of its ranges was
    /// (empty for records written before the log existed).
    Deleted {
        /// `kinds[i]` is the kind of the record's range `i`.
        kinds: Vec<DeletionKind>,
        /// The signed record (its own index and hash chain are kept).
        record: SignedDeletionRecord,
    },
    /// Upload codes issued by an operator: how many and when, never the codes.
    CodesIssued {
        /// The operator's account name.
        actor: String,
        /// How many.
        count: u64,
        /// When, unix seconds.
        at: u64,
    },
    /// An operator account changed (SPEC.md §8.4): who did what to which
    /// account, never a password.
    AccountChanged {
        /// The operator who made the change (`operator-cli` for the node's CLI).
        actor: String,
        /// What was done.
        action: AccountAction,
        /// The account changed.
        target: String,
        /// The account's roles after the change, in canonical order.
        roles: Vec<OperatorRole>,
        /// When, unix seconds.
        at: u64,
    },
    /// Expired upload codes purged.
    CodesDeleted {
        /// How many.
        count: u64,
        /// When, unix seconds.
        at: u64,
    },
    /// The node started with a trust list other than the last one logged.
    TrustList {
        /// SHA-256 of the list (origins, key ids and keys, in order).
        digest: Hash,
        /// Number of authority keys.
        authorities: u64,
        /// When, unix seconds.
        at: u64,
    },
}

fn bad(why: String) -> LogError {
    LogError::Malformed {
        what: "log entry",
        why,
    }
}

fn number<T: std::str::FromStr>(field: &str, s: &str) -> Result<T, LogError> {
    s.parse()
        .map_err(|_| bad(format!("{field} {s:?} is not a decimal number")))
}

impl Event {
    /// The leaf data.
    pub fn encode(&self) -> Vec<u8> {
        let line = match self {
            Event::Published {
                form,
                origin,
                sequence,
                day,
                key_count,
                content_id,
                at,
            } => {
                let form = form.word();
                format!(
                    "published {form} {origin} {sequence} {day} {key_count} {} {at}",
                    hex_hash(content_id)
                )
            }
            Event::Deleted { kinds, record } => {
                let kinds = if kinds.is_empty() {
                    "-".to_owned()
                } else {
                    kinds.iter().map(|k| k.word()).collect::<Vec<_>>().join(",")
                };
                format!(
                    "deleted {kinds} {}",
                    BASE64_STANDARD.encode(record.encode())
                )
            }
            Event::CodesIssued { actor, count, at } => format!("codes-issued {actor} {count} {at}"),
            Event::AccountChanged {
                actor,
                action,
                target,
                roles,
                at,
            } => format!(
                "account {actor} {} {target} {} {at}",
                action.word(),
                roles_field(roles)
            ),
            Event::CodesDeleted { count, at } => format!("codes-deleted {count} {at}"),
            Event::TrustList {
                digest,
                authorities,
                at,
            } => format!("trust-list {} {authorities} {at}", hex_hash(digest)),
        };
        let mut out = line.into_bytes();
        out.push(b'\n');
        out
    }

    /// Decodes leaf data; refuses anything that does not re-encode identically.
    /// A deletion's record is decoded and its signature verified.
    pub fn decode(bytes: &[u8]) -> Result<Event, LogError> {
        if bytes.len() > MAX_ENTRY_LEN {
            return Err(LogError::Oversized {
                what: "log entry",
                len: bytes.len(),
                max: MAX_ENTRY_LEN,
            });
        }
        let text = std::str::from_utf8(bytes).map_err(|_| bad("not UTF-8".into()))?;
        let line = text
            .strip_suffix('\n')
            .ok_or_else(|| bad("does not end in a newline (truncated?)".into()))?;
        let fields: Vec<&str> = line.split(' ').collect();
        let event = match fields.as_slice() {
            ["published", form, origin, sequence, day, keys, content, at] => {
                let form = PublicationForm::parse(form)?;
                validate_origin(origin).map_err(|e| bad(e.to_string()))?;
                Event::Published {
                    form,
                    origin: (*origin).to_owned(),
                    sequence: number("sequence", sequence)?,
                    day: number("day", day)?,
                    key_count: number("key count", keys)?,
                    content_id: parse_hex_hash("log entry", content)?,
                    at: number("time", at)?,
                }
            }
            ["deleted", kinds, record] => {
                let kinds = if *kinds == "-" {
                    Vec::new()
                } else {
                    kinds
                        .split(',')
                        .map(DeletionKind::parse)
                        .collect::<Result<_, _>>()?
                };
                let raw = BASE64_STANDARD
                    .decode(record)
                    .map_err(|_| bad("deletion record is not base64".into()))?;
                let record = SignedDeletionRecord::decode(&raw).map_err(|e| bad(e.to_string()))?;
                let body = record.verify().map_err(|e| bad(e.to_string()))?;
                if !kinds.is_empty() && kinds.len() != body.deleted.len() {
                    return Err(bad(format!(
                        "{} kinds for {} deleted ranges",
                        kinds.len(),
                        body.deleted.len()
                    )));
                }
                Event::Deleted { kinds, record }
            }
            ["codes-issued", actor, count, at] => {
                validate_actor(actor)?;
                Event::CodesIssued {
                    actor: (*actor).to_owned(),
                    count: number("count", count)?,
                    at: number("time", at)?,
                }
            }
            ["account", actor, action, target, roles, at] => {
                validate_actor(actor)?;
                validate_actor(target)?;
                Event::AccountChanged {
                    actor: (*actor).to_owned(),
                    action: AccountAction::parse(action)?,
                    target: (*target).to_owned(),
                    roles: parse_roles(roles)?,
                    at: number("time", at)?,
                }
            }
            ["codes-deleted", count, at] => Event::CodesDeleted {
                count: number("count", count)?,
                at: number("time", at)?,
            },
            ["trust-list", digest, authorities, at] => Event::TrustList {
                digest: parse_hex_hash("log entry", digest)?,
                authorities: number("authorities", authorities)?,
                at: number("time", at)?,
            },
            _ => return Err(bad(format!("unknown event {:?}", fields[0]))),
        };
        if event.encode() != bytes {
            return Err(LogError::NonCanonical("log entry"));
        }
        Ok(event)
    }

    /// When the event happened, unix seconds.
    pub fn at(&self) -> Option<u64> {
        match self {
            Event::Published { at, .. }
            | Event::CodesIssued { at, .. }
            | Event::AccountChanged { at, .. }
            | Event::CodesDeleted { at, .. }
            | Event::TrustList { at, .. } => Some(*at),
            Event::Deleted { record, .. } => record.verify().ok().map(|r| r.deleted_at),
        }
    }
}

/// An operator account name: 1..=64 of `[a-z0-9._-]`.
pub fn validate_actor(actor: &str) -> Result<(), LogError> {
    let ok = (1..=MAX_ACTOR_LEN).contains(&actor.len())
        && actor
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(bad(format!(
            "actor {actor:?} is not 1..={MAX_ACTOR_LEN} of [a-z0-9._-]"
        )))
    }
}
