//! Scenarios × servers → cases: every assignment of servers to a scenario's roles, so a
//! two-role scenario over N servers yields N² cases (the diagonal is same-server, the rest
//! federation).

use crate::scenario::Scenario;
use crate::servers::ServersFile;
use std::collections::BTreeMap;

/// One scenario on one assignment of servers to its roles.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Case {
    /// Index into the scenario list.
    pub scenario: usize,
    /// Role → index into the servers file's list.
    pub roles: BTreeMap<String, usize>,
}

impl Case {
    /// A stable, human-readable name: `msg-chat-remote-bare[prosody→ejabberd]`.
    pub fn name(&self, scenarios: &[Scenario], servers: &ServersFile) -> String {
        let sc = &scenarios[self.scenario];
        let pair: Vec<&str> = sc.roles.iter().map(|r| servers.servers[self.roles[r]].name.as_str()).collect();
        format!("{}[{}]", sc.id, pair.join("→"))
    }
}

/// All cases, scenario by scenario, assignments in servers-file order (A varies slowest).
/// `filter` keeps the cases whose name contains it (case-insensitive).
pub fn expand(scenarios: &[Scenario], servers: &ServersFile, filter: Option<&str>) -> Vec<Case> {
    let n = servers.servers.len();
    let mut cases = Vec::new();
    for (si, sc) in scenarios.iter().enumerate() {
        let k = sc.roles.len();
        let total = n.pow(k as u32);
        for mut index in 0..total {
            // Digits of `index` in base n, most significant first, pick the server of each role.
            let mut picks = vec![0; k];
            for slot in picks.iter_mut().rev() {
                *slot = index % n;
                index /= n;
            }
            let roles = sc.roles.iter().cloned().zip(picks).collect();
            cases.push(Case { scenario: si, roles });
        }
    }
    if let Some(f) = filter {
        let f = f.to_lowercase();
        cases.retain(|c| c.name(scenarios, servers).to_lowercase().contains(&f));
    }
    cases
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::servers::Server;
    use std::path::PathBuf;

    fn scenario(id: &str, roles: &[&str]) -> Scenario {
        Scenario {
            id: id.into(),
            title: id.into(),
            file: PathBuf::from(format!("{id}.yaml")),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            s2s_policy: None,
            accounts: vec![],
            script: Default::default(),
        }
    }

    fn servers(names: &[&str]) -> ServersFile {
        ServersFile {
            path: "s.yaml".into(),
            netns: None,
            harness: None,
            servers: names.iter().map(|n| Server::example(n)).collect(),
        }
    }

    #[test]
    fn two_roles_make_every_ordered_pair_including_the_diagonal() {
        let sv = servers(&["p", "e", "o"]);
        let sc = vec![scenario("x", &["A", "B"])];
        let names: Vec<String> = expand(&sc, &sv, None).iter().map(|c| c.name(&sc, &sv)).collect();
        assert_eq!(names.len(), 9);
        assert_eq!(names[0], "x[p→p]");
        assert_eq!(names[1], "x[p→e]");
        assert_eq!(names[3], "x[e→p]");
        assert_eq!(names[8], "x[o→o]");
    }

    #[test]
    fn one_role_runs_once_per_server_and_filter_narrows() {
        let sv = servers(&["prosody", "ejabberd"]);
        let sc = vec![scenario("one", &["A"]), scenario("two", &["A", "B"])];
        assert_eq!(expand(&sc, &sv, None).len(), 2 + 4);
        let names: Vec<String> = expand(&sc, &sv, Some("TWO[ejabberd")).iter().map(|c| c.name(&sc, &sv)).collect();
        assert_eq!(names, vec!["two[ejabberd→prosody]", "two[ejabberd→ejabberd]"]);
    }
}
