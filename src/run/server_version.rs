//! What each server says it is: XEP-0092 Software Version (`jabber:iq:version`), asked once per run
//! with a throwaway account, for the reports' run metadata. Never affects a verdict.

use crate::run::accounts;
use crate::servers::Server;
use crate::xml::{Element, NS_CLIENT};
use crate::xmpp::{Incoming, Session, Transcript};
use std::time::Duration;

pub const NS_VERSION: &str = "jabber:iq:version";

/// `name version (os)` as the server answered, or None when it could not be asked or did not answer
/// within `step_timeout` (per step: account creation, login, the query).
pub async fn ask(server: &Server, step_timeout: Duration, max_stanza: usize) -> Option<String> {
    let tag = accounts::random_tag(6);
    let (account, _) =
        accounts::provision(server, "version", &format!("version-{tag}"), step_timeout, max_stanza).await;
    let account = account.ok()?;
    let params = server.client_params(account.jid, &account.password, None, step_timeout, max_stanza);
    let mut session =
        tokio::time::timeout(step_timeout * 4, Session::connect(&params, Transcript::new())).await.ok()?.ok()?;
    let id = format!("version-{tag}");
    let iq = Element::new("iq", NS_CLIENT)
        .with_attr("type", "get")
        .with_attr("id", id.as_str())
        .with_attr("to", server.domain.as_str())
        .with_child(Element::new("query", NS_VERSION));
    let answer = match session.sender().send(&iq).await {
        Ok(()) => tokio::time::timeout(step_timeout, async {
            while let Some(incoming) = session.incoming.recv().await {
                match incoming {
                    Incoming::Stanza(el) if el.is("iq", NS_CLIENT) && el.attr("id") == Some(id.as_str()) => {
                        return Some(el)
                    }
                    Incoming::Stanza(_) => continue,
                    Incoming::Closed { .. } => return None,
                }
            }
            None
        })
        .await
        .ok()
        .flatten(),
        Err(_) => None,
    };
    session.close().await;
    describe(&answer?)
}

/// `name version (os)` from an IQ result; None for an error or an empty answer.
pub fn describe(iq: &Element) -> Option<String> {
    if iq.attr("type") != Some("result") {
        return None;
    }
    let query = iq.child("query", NS_VERSION)?;
    let field =
        |name: &str| query.child(name, NS_VERSION).map(|e| e.text().trim().to_string()).filter(|t| !t.is_empty());
    let mut text = [field("name"), field("version")].into_iter().flatten().collect::<Vec<_>>().join(" ");
    if let Some(os) = field("os") {
        text.push_str(&format!(" ({os})"));
    }
    // A server's answer is free text: keep it to one readable line.
    let text: String = text.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(200).collect();
    (!text.is_empty()).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::parse_fragment;

    #[test]
    fn answers_become_one_line() {
        let iq = parse_fragment(
            "<iq type='result' id='v'><query xmlns='jabber:iq:version'><name>Prosody</name><version>0.12.3</version><os>Linux\n 6.1</os></query></iq>",
            NS_CLIENT,
        )
        .unwrap();
        assert_eq!(describe(&iq).as_deref(), Some("Prosody 0.12.3 (Linux 6.1)"));
        let no_os = parse_fragment(
            "<iq type='result' id='v'><query xmlns='jabber:iq:version'><name>ejabberd</name><version>23.01</version></query></iq>",
            NS_CLIENT,
        )
        .unwrap();
        assert_eq!(describe(&no_os).as_deref(), Some("ejabberd 23.01"));
        let error =
            parse_fragment("<iq type='error' id='v'><query xmlns='jabber:iq:version'/></iq>", NS_CLIENT).unwrap();
        assert_eq!(describe(&error), None);
    }
}
