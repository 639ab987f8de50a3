//! The README's configuration table against the binaries' own settings: every env var it
//! lists is one the binary reads (a flag's env), with the default the README gives.

use clap::CommandFactory;
use voteflow_consumer::settings::ConsumerSettings;
use voteflow_producer_grpc::settings as grpc;
use voteflow_producer_rest::settings as rest;

const README: &str = include_str!("../../README.md");

/// Read by tokio itself, not by the binaries' settings.
const NOT_SETTINGS: [&str; 1] = ["TOKIO_WORKER_THREADS"];

fn commands() -> Vec<(&'static str, clap::Command)> {
    vec![
        ("rest-client", rest::FrontSettings::command()),
        ("rest-server", rest::ServerSettings::command()),
        ("grpc-client", grpc::FrontSettings::command()),
        ("grpc-server", grpc::ServerSettings::command()),
        ("consumer", ConsumerSettings::command()),
    ]
}

/// The binaries a row of the table speaks of.
fn binaries_of(row: &str) -> Vec<&'static str> {
    match row {
        "HTTP services" => vec!["rest-client", "rest-server", "grpc-client"],
        "all" => vec!["rest-client", "rest-server", "grpc-client", "grpc-server", "consumer"],
        name => commands().into_iter().map(|(binary, _)| binary).filter(|binary| *binary == name).collect(),
    }
}

/// (row, env var, default as the README writes it) for each `VAR` in the table.
fn listed() -> Vec<(String, String, Option<String>)> {
    let table = README.split("## Configuration").nth(1).expect("a Configuration section");
    let mut listed = Vec::new();
    for line in table.lines().take_while(|line| !line.starts_with("## ")).filter(|line| line.starts_with("| ")) {
        let mut cells = line.trim_matches('|').splitn(2, '|');
        let (row, vars) = (cells.next().unwrap_or_default().trim(), cells.next().unwrap_or_default());
        let parts: Vec<&str> = vars.split('`').collect();
        for (at, code) in parts.iter().enumerate().filter(|(at, _)| at % 2 == 1) {
            let is_var =
                !code.is_empty() && code.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            if !is_var || NOT_SETTINGS.contains(code) {
                continue;
            }
            let default = parts.get(at + 1).and_then(|after| after.strip_prefix(" (")).map(|after| {
                let end = after.find([' ', ')']).unwrap_or(after.len());
                let token = after[..end].trim_end_matches([';', ',']);
                // `5: why` is the default 5; `voteflow:)` is the default `voteflow:`.
                if after[end..].starts_with(' ') { token.trim_end_matches(':') } else { token }.to_owned()
            });
            listed.push((row.to_owned(), (*code).to_owned(), default));
        }
    }
    listed
}

#[test]
fn every_env_var_the_readme_lists_is_read_with_the_default_it_gives() {
    let listed = listed();
    assert!(listed.len() >= 40, "the table's env vars were not found: {listed:?}");
    let commands = commands();
    let mut wrong = Vec::new();
    for (row, var, default) in &listed {
        let binaries = binaries_of(row);
        assert!(!binaries.is_empty(), "the README's row {row:?} names no binary");
        for binary in binaries {
            let command = &commands.iter().find(|(name, _)| *name == binary).expect("a known binary").1;
            let arg = command.get_arguments().find(|arg| arg.get_env().is_some_and(|env| env == var.as_str()));
            let Some(arg) = arg else {
                wrong.push(format!("{binary} does not read {var}"));
                continue;
            };
            let declared: Vec<String> =
                arg.get_default_values().iter().map(|value| value.to_string_lossy().into_owned()).collect();
            if let Some(default) = default
                && declared.join(",") != *default
            {
                wrong.push(format!("{binary}: README says {var} defaults to {default}, the binary to {declared:?}"));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
