//! `edgeice user`: manage the SQLite user store that `edgeice serve` reads.

pub mod store;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};

use store::UserStore;

/// Arguments of `edgeice user`.
#[derive(Debug, Args)]
pub struct UserArgs {
    /// The user store (default: /var/lib/edgeice/users.db for root, else
    /// ~/.local/share/edgeice/users.db).
    #[arg(long = "users-db", value_name = "PATH", global = true)]
    db: Option<PathBuf>,

    #[command(subcommand)]
    command: UserCommand,
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Add a user, or set a new password for one.
    Add {
        /// User name.
        name: String,
        /// Password; a random one is made and printed if not given.
        #[arg(long)]
        password: Option<String>,
        /// Realm (must match `edgeice serve --realm`).
        #[arg(long, default_value = "edgeice")]
        realm: String,
    },
    /// List the users.
    List,
    /// Remove a user.
    Remove {
        /// User name.
        name: String,
        /// Realm.
        #[arg(long, default_value = "edgeice")]
        realm: String,
    },
}

/// Runs `edgeice user`.
pub fn run(args: UserArgs) -> Result<()> {
    let path = args.db.unwrap_or_else(UserStore::default_path);
    let store = UserStore::open(&path, store::WRITER_PATIENCE)?;
    match args.command {
        UserCommand::Add {
            name,
            password,
            realm,
        } => {
            let generated = password.is_none();
            let password = match password {
                Some(p) => p,
                None => store::random_password()?,
            };
            store.add(&name, &realm, &password)?;
            if generated {
                println!("{name}:{password}");
            }
            eprintln!(
                "edgeice: user {name} (realm {realm}) saved in {}",
                path.display()
            );
        }
        UserCommand::List => {
            for user in store.list()? {
                println!("{}\t{}", user.name, user.realm);
            }
        }
        UserCommand::Remove { name, realm } => {
            if !store.remove(&name, &realm)? {
                anyhow::bail!("no user {name} in realm {realm} in {}", path.display());
            }
            eprintln!("edgeice: user {name} removed from {}", path.display());
        }
    }
    Ok(())
}
