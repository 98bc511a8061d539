//! The `gatehouse` binary: parses the command line and configuration, then runs one command.
//! Errors end as one line on standard error, never a panic or a backtrace.

/// mimalloc instead of glibc's allocator: the HR import and SCIM provisioning spent about half
/// their time in glibc malloc/free (BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod access_cmd;
mod apps_cmd;
mod audit_cmd;
mod background;
mod cli;
mod config;
mod context;
mod demo;
mod gateway_cmd;
mod hr_cmd;
mod logging;
mod mfa_cmd;
mod outbound;
mod push;
mod report_cmd;
mod reviews_cmd;
mod scim_cmd;
mod serve;

use clap::Parser;
use cli::{Cli, Command};
use config::Settings;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let serve_args = match &cli.command {
        Command::Serve(args) | Command::Demo(args) => Some(args),
        _ => None,
    };
    let settings = Settings::resolve(&cli.global, serve_args)?;
    let default_filter = match cli.command {
        Command::Serve(_) | Command::Demo(_) => "info,sqlx=warn",
        // Streaming a long audit log is expected to be slow; sqlx would warn about it.
        _ => "warn,sqlx=error",
    };
    logging::init(
        settings.log_format,
        settings.log_level.as_deref().unwrap_or(default_filter),
    )?;

    match cli.command {
        Command::Serve(_) => serve::run(settings).await.map(|()| ExitCode::SUCCESS),
        Command::Demo(_) => demo::run(settings).await.map(|()| ExitCode::SUCCESS),
        Command::Migrate => {
            let store = context::open_store(&settings, context::Schema::Migrate).await?;
            println!(
                "{}: schema version {} (migrations are applied)",
                store.describe(),
                store.schema_version()
            );
            store.close().await;
            Ok(ExitCode::SUCCESS)
        }
        Command::Audit(cmd) => audit_cmd::run(settings, cmd).await,
        Command::Apply(args) => access_cmd::apply(&settings, args).await,
        Command::Policy(cli::PolicyCommand::Check { file }) => access_cmd::check(&file),
        Command::Authorize(args) => access_cmd::authorize(&settings, args).await,
        Command::Sod(cli::SodCommand::Scan) => access_cmd::sod_scan(&settings).await,
        Command::Findings(args) => access_cmd::findings(&settings, &args).await,
        Command::Reviews(cmd) => reviews_cmd::run(&settings, cmd).await,
        Command::Report(cmd) => report_cmd::run(&settings, cmd).await,
        Command::Directory(cli::DirectoryCommand::Sync { dry_run }) => {
            reviews_cmd::directory_sync(&settings, dry_run).await
        }
        Command::Recordings(cmd) => gateway_cmd::recordings(&settings, cmd),
        Command::Ssh(cmd) => gateway_cmd::ssh(&settings, cmd).await,
        Command::Mfa(cmd) => mfa_cmd::run(&settings, cmd).await,
        Command::Apps(cmd) => apps_cmd::run(&settings, cmd).await,
        Command::Hr(cmd) => hr_cmd::run(&settings, cmd).await,
        Command::Scim(cmd) => scim_cmd::run(&settings, cmd).await,
        Command::Push(cmd) => push::command(&settings, cmd).await,
        Command::Version => {
            use gatehouse_broker::ledger::store::{Backend, latest_schema_version};
            println!("gatehouse {}", env!("CARGO_PKG_VERSION"));
            println!(
                "database schema: {} (sqlite, the embedded default), {} (postgres)",
                latest_schema_version(Backend::Sqlite),
                latest_schema_version(Backend::Postgres)
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
