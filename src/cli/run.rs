//! `partwarden run`: the daemon (see the library's `daemon` module).

use std::process::ExitCode;

use partwarden::config::Config;

pub async fn run(config: Config) -> anyhow::Result<ExitCode> {
    partwarden::daemon::run(config)
        .await
        .map(|()| ExitCode::SUCCESS)
}
