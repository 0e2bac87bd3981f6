//! Fresh, unique accounts for every case, so no case sees another's roster or presence
//! (LAB.md: a re-run against old rosters is answered locally and never crosses s2s).

use crate::jid::Jid;
use crate::results::ConnectionRecord;
use crate::run::case::Account;
use crate::servers::{Accounts, Server};
use crate::xmpp::{self, Transcript};
use rand::Rng;
use std::time::Duration;

/// Deadline for one account-creation command.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// A short random tag, lowercase letters and digits: unique enough per case and readable in logs.
pub fn random_tag(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";
    let mut rng = rand::thread_rng();
    (0..len).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char).collect()
}

/// Create account `<localpart>@<server domain>` (usually `<name>-<tag>`, unique per case) with
/// a random password. `name` is the scenario's name for it (for the record).
/// Returns the account, plus the wire log of the registration connection when there was one.
pub async fn provision(
    server: &Server,
    name: &str,
    localpart: &str,
    step_timeout: Duration,
    max_stanza: usize,
) -> (Result<Account, String>, Option<ConnectionRecord>) {
    let jid = match Jid::parse(&format!("{localpart}@{}", server.domain)) {
        Ok(j) => j,
        Err(e) => return (Err(format!("account name {localpart:?} is not a valid localpart: {e}")), None),
    };
    let password = random_tag(20);
    let account = Account { jid: jid.clone(), password: password.clone() };
    match &server.accounts {
        Accounts::InBand => {
            let transcript = Transcript::new();
            let params = server.client_params(jid.clone(), &password, None, step_timeout, max_stanza);
            let result = xmpp::register(&params, transcript.clone()).await;
            let record = ConnectionRecord {
                actor: format!("register {name}"),
                server: server.name.clone(),
                jid: jid.to_string(),
                tls: None,
                s2s: None,
                transcript: transcript.entries(),
            };
            let result = result
                .map(|()| account)
                .map_err(|e| format!("cannot create account {jid} on {} by in-band registration: {e}", server.name));
            (result, Some(record))
        }
        Accounts::Command(template) => {
            (run_command(template, localpart, &server.domain, &password).await.map(|()| account), None)
        }
    }
}

/// Run the servers file's account command with `{user}`, `{domain}`, `{password}` filled in.
async fn run_command(template: &[String], user: &str, domain: &str, password: &str) -> Result<(), String> {
    let args: Vec<String> = template
        .iter()
        .map(|a| a.replace("{user}", user).replace("{domain}", domain).replace("{password}", password))
        .collect();
    // The password is random and per case, but still keep it out of messages.
    let shown = template.join(" ").replace("{user}", user).replace("{domain}", domain);
    let mut cmd = tokio::process::Command::new(&args[0]);
    cmd.args(&args[1..]).stdin(std::process::Stdio::null()).kill_on_drop(true);
    let output = match tokio::time::timeout(COMMAND_TIMEOUT, cmd.output()).await {
        Err(_) => return Err(format!("account command `{shown}` did not finish within {COMMAND_TIMEOUT:?}")),
        Ok(Err(e)) => return Err(format!("cannot run account command `{shown}`: {e}")),
        Ok(Ok(o)) => o,
    };
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let said = if stderr.trim().is_empty() { stdout.trim().to_string() } else { stderr.trim().to_string() };
    Err(format!("account command `{shown}` failed ({}): {said}", output.status))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_short_and_distinct() {
        let a = random_tag(6);
        assert_eq!(a.len(), 6);
        assert!(a.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()));
        assert_ne!(random_tag(12), random_tag(12));
    }

    #[tokio::test]
    async fn command_failure_names_the_command_and_what_it_said() {
        let template: Vec<String> = ["sh", "-c", "echo no such host {domain} >&2; exit 3"].map(String::from).to_vec();
        let err = run_command(&template, "alice-x", "nowhere.lab", "secret").await.unwrap_err();
        assert!(err.contains("no such host nowhere.lab"), "{err}");
        assert!(err.contains("exit status: 3"), "{err}");
        assert!(!err.contains("secret"));
    }

    #[tokio::test]
    async fn command_success_is_ok() {
        let template: Vec<String> = ["true", "{user}"].map(String::from).to_vec();
        assert!(run_command(&template, "u", "d", "p").await.is_ok());
    }
}
