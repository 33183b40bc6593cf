//! `edgeice config`: work on configuration files. `from-coturn` writes the
//! `edgeice serve` configuration equivalent to a coturn `turnserver.conf`.

mod coturn;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

/// Arguments of `edgeice config`.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    command: ConfigCommand,
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Write the edgeice serve TOML equivalent to a coturn turnserver.conf,
    /// listing (in the output, as comments, and on stderr) every line it
    /// cannot carry over, with why.
    FromCoturn {
        /// coturn's configuration file.
        #[arg(value_name = "TURNSERVER.CONF")]
        input: PathBuf,
        /// Where to write the TOML (created 0600: it may hold passwords)
        /// [default: standard output].
        #[arg(short, long, value_name = "OUT.TOML")]
        output: Option<PathBuf>,
    },
}

/// Runs `edgeice config`.
pub fn run(args: ConfigArgs) -> Result<()> {
    match args.command {
        ConfigCommand::FromCoturn { input, output } => {
            let text = std::fs::read_to_string(&input)
                .with_context(|| format!("reading {}", input.display()))?;
            let converted = coturn::convert(&text, &input.display().to_string());
            for note in &converted.skipped {
                eprintln!("edgeice: not carried over: {note}");
            }
            match output {
                Some(path) => write_private(&path, &converted.toml)?,
                None => {
                    use std::io::Write;
                    std::io::stdout()
                        .lock()
                        .write_all(converted.toml.as_bytes())
                        .context("writing to standard output")?;
                }
            }
            Ok(())
        }
    }
}

/// Writes `text` to a new or truncated file readable by its owner only.
fn write_private(path: &std::path::Path, text: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    // An existing file keeps its mode through open: narrow it too.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("making {} private", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}
