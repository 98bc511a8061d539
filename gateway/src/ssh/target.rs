//! What the SSH user names: `LOGIN@TARGET` (`ssh -p 2222 root@db-01@gatehouse`), `TARGET` alone
//! (the one login the access allows), or nothing Gatehouse knows (`ssh -p 2222 gatehouse` sends
//! the local user name): then the gateway lists what the identity may reach.

/// The destination asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// `LOGIN@TARGET`.
    Explicit { login: String, target: String },
    /// A single word: a target if the identity may reach one by that name, else the menu.
    Word(String),
}

/// Longest SSH user Gatehouse looks at (OpenSSH allows long names; targets and logins are short).
const MAX_USER: usize = 256;

/// Parses the SSH user. The last `@` separates the target, so a login may itself hold `@`.
pub fn parse(user: &str) -> Destination {
    let user = if user.len() > MAX_USER {
        ""
    } else {
        user.trim()
    };
    match user.rsplit_once('@') {
        Some((login, target)) if !login.is_empty() && !target.is_empty() => Destination::Explicit {
            login: login.to_string(),
            target: target.to_string(),
        },
        _ => Destination::Word(user.trim_matches('@').to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_and_target_are_split_at_the_last_at() {
        assert_eq!(
            parse("root@db-01"),
            Destination::Explicit {
                login: "root".into(),
                target: "db-01".into()
            }
        );
        assert_eq!(
            parse("svc@corp@db-01"),
            Destination::Explicit {
                login: "svc@corp".into(),
                target: "db-01".into()
            }
        );
        assert_eq!(parse("db-01"), Destination::Word("db-01".into()));
        assert_eq!(parse("@db-01"), Destination::Word("db-01".into()));
        assert_eq!(parse("root@"), Destination::Word("root".into()));
        assert_eq!(parse(&"x".repeat(1000)), Destination::Word(String::new()));
    }
}
