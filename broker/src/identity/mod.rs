//! Identity: who people are and how they prove it — identities, groups, SSH keys, API tokens,
//! browser sessions, passwords, second factors, passkeys, recovery codes, directory sign-in and directory sync.

pub mod directory;
pub mod directory_sync;
pub mod groups;
pub mod identities;
pub mod mfa;
pub mod passkeys;
pub mod passwords;
pub mod recovery;
pub mod ssh_keys;
pub mod tokens;
pub mod web_sessions;
