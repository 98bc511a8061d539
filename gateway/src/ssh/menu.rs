//! The text `ssh -p 2222 gatehouse` prints with no target: what the identity may reach now (with
//! the exact ssh line for each) and the roles it could request.

use gatehouse_broker::access::policy::reach::Reach;
use gatehouse_broker::clock::format_ms;

/// `host` and `port` are where the client reached the gateway, for the ssh lines.
pub fn text(
    username: &str,
    reach: &[Reach],
    requestable: &[String],
    host: &str,
    port: u16,
) -> String {
    let mut out = format!("Gatehouse: hello {username}.\r\n");
    if reach.is_empty() {
        out.push_str("You may not reach any target right now.\r\n");
    } else {
        out.push_str("You may reach now:\r\n");
        for r in reach {
            let until = r
                .until_ms
                .map(|t| format!(" (until {})", format_ms(t)))
                .unwrap_or_default();
            out.push_str(&format!("  {}{until}\r\n", r.target));
            for login in &r.logins {
                out.push_str(&format!(
                    "      ssh -p {port} {login}@{}@{host}\r\n",
                    r.target
                ));
            }
        }
    }
    if !requestable.is_empty() {
        out.push_str("Roles you may request (web UI, or POST /api/v1/requests):\r\n");
        for role in requestable {
            out.push_str(&format!("  {role}\r\n"));
        }
    }
    out
}
