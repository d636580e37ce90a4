//! `elsctl`: parse, run, print errors, exit with a code that says what happened
//! (see `elsctl --help` and [`elsctl::exit`]).

use std::io::{self, Write};
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use elsctl::{exit, Cli, Io};

fn main() -> ExitCode {
    // Usage errors print clap's message and exit 2 here.
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(exit::FAILURE);
        }
    };
    let (stdin, stdout, stderr) = (io::stdin(), io::stdout(), io::stderr());
    let (mut stdin, mut out, mut err) = (stdin.lock(), stdout.lock(), stderr.lock());
    let result = runtime.block_on(elsctl::run(
        cli,
        &mut Io {
            stdin: &mut stdin,
            out: &mut out,
            err: &mut err,
        },
    ));
    match result {
        Ok(outcome) => ExitCode::from(outcome.exit_code()),
        // The reader went away (`elsctl dlq list | head`): nothing left to say.
        Err(e) if e.is_broken_pipe() => ExitCode::from(exit::SUCCESS),
        Err(e) => {
            let _ = out.flush();
            let _ = writeln!(err, "error: {e}");
            if let Some(hint) = e.hint() {
                let _ = writeln!(err, "hint: {hint}");
            }
            ExitCode::from(e.exit_code())
        }
    }
}
