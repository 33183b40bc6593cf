//! `edgeice assets DIR` (hidden): writes the manual pages (clap_mangen) and
//! the shell completions (clap_complete) made from the command line's own
//! definition, so that they cannot drift from the flags. The .deb build
//! (packaging/build-deb.sh) runs it before cargo-deb packs the files.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use clap_complete::Shell;

/// Arguments of `edgeice assets`.
#[derive(Debug, Args)]
pub struct AssetsArgs {
    /// Where to write `man/*.1` and `completions/{edgeice.bash,_edgeice,edgeice.fish}`.
    #[arg(value_name = "DIR")]
    dir: PathBuf,
}

/// Writes the pages and completions for `command` under `args.dir`.
pub fn run(args: AssetsArgs, command: clap::Command) -> Result<()> {
    let man = args.dir.join("man");
    let completions = args.dir.join("completions");
    for dir in [&man, &completions] {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    clap_mangen::generate_to(command.clone(), &man)
        .with_context(|| format!("writing the manual pages into {}", man.display()))?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let mut command = command.clone();
        clap_complete::generate_to(shell, &mut command, "edgeice", &completions)
            .with_context(|| format!("writing the {shell} completions"))?;
    }
    println!("wrote {} and {}", man.display(), completions.display());
    Ok(())
}
