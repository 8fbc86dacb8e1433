//! `muster`: the one binary. Parses the command line and dispatches.

mod admin_cli;
mod app_cli;
mod cli;
mod config;
mod group_cli;
mod http;
mod log_sink;
mod logging;
mod mail_sender;
mod mapping_cli;
mod output;
mod serve;
mod webhook_cli;
mod webhook_sender;

use clap::Parser;

use cli::{Cli, Command};
use config::Config;

/// mimalloc instead of the system allocator: a request allocates and frees many small buffers
/// (JSON, headers, rows), and with glibc's malloc that was about 12% of a read's time in the
/// profile (`perf record` on `GET /Users/{id}`, docs/benchmarks.md). See `muster-alloc` for how
/// it is asked.
#[global_allocator]
static ALLOCATOR: muster_alloc::Mimalloc = muster_alloc::Mimalloc;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let cfg = match Config::load(&cli.overrides) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("muster: {}", output::describe_error(&e));
            return std::process::ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("muster: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let is_server = matches!(cli.command, Command::Serve);
    let logged = if is_server {
        logging::init(&cfg)
    } else {
        // Administration commands print their results; logs only for warnings.
        let quiet = Config {
            log_level: std::env::var("MUSTER_LOG").unwrap_or_else(|_| "warn".into()),
            ..cfg.clone()
        };
        logging::init(&quiet)
    };
    let log_guard = match logged {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("muster: cannot start the log writer thread: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve => {
                let listener = tokio::net::TcpListener::bind(&cfg.listen_addr)
                    .await
                    .map_err(|e| {
                        let hint = if e.kind() == std::io::ErrorKind::AddrInUse {
                            " (another program, or another Muster, has it: choose another address with --listen-addr or MUSTER_LISTEN_ADDR)"
                        } else {
                            ""
                        };
                        anyhow::anyhow!("cannot listen on {}: {e}{hint}", cfg.listen_addr)
                    })?;
                serve::run(listener, cfg, serve::shutdown_signal()).await
            }
            Command::Migrate => {
                let app = serve::open(&cfg).await?;
                println!("Database migrated ({}).", app.muster.store.backend());
                app.store.close().await;
                Ok(())
            }
            other => cli::run_command(&cfg, other).await,
        }
    });
    // What the log writer holds is written before the outcome is.
    drop(log_guard);
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("muster: {}", output::describe_error(&e));
            std::process::ExitCode::FAILURE
        }
    }
}
