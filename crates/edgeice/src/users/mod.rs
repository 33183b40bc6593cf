//! `edgeice user`: manage the users `edgeice serve` reads — in the SQLite
//! user store, or with `--redis URL` in the fleet's Redis (see
//! `serve/fleet/`), where every node takes a change within a second.

pub mod store;

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::{Args, Subcommand};

use crate::serve::fleet::admin::FleetAdmin;
use store::UserStore;

/// Arguments of `edgeice user`.
#[derive(Debug, Args)]
pub struct UserArgs {
    /// The user store (default: /var/lib/edgeice/users.db for root, else
    /// ~/.local/share/edgeice/users.db).
    #[arg(
        long = "users-db",
        value_name = "PATH",
        global = true,
        conflicts_with = "redis"
    )]
    db: Option<PathBuf>,

    /// The fleet's Redis (`edgeice serve --redis`) instead of the user
    /// store: redis://[:PASSWORD@]HOST[:PORT] or rediss://.
    #[arg(long, value_name = "URL", global = true, env = "EDGEICE_REDIS")]
    redis: Option<String>,

    /// A file whose first line is the Redis password.
    #[arg(
        long,
        value_name = "PATH",
        global = true,
        env = "EDGEICE_REDIS_PASSWORD_FILE"
    )]
    redis_password_file: Option<PathBuf>,

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
    /// Set a new password for an existing user.
    Passwd {
        /// User name.
        name: String,
        /// Password; a random one is made and printed if not given.
        #[arg(long)]
        password: Option<String>,
        /// Realm.
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
    /// The fleet's TURN REST API secrets (with --redis): several may be in
    /// force at once, for rotation.
    Secret {
        #[command(subcommand)]
        action: SecretCommand,
    },
}

#[derive(Debug, Subcommand)]
enum SecretCommand {
    /// Add a secret; those in force stay.
    Add { secret: String },
    /// Remove a secret.
    Remove { secret: String },
    /// Say how many secrets are in force (never the secrets).
    Count,
}

/// Where users are kept: the SQLite store or the fleet's Redis.
enum Users {
    Store(UserStore, PathBuf),
    Fleet(FleetAdmin),
}

impl Users {
    fn exists(&mut self, name: &str, realm: &str) -> Result<bool> {
        match self {
            Users::Store(store, _) => Ok(store
                .list()?
                .iter()
                .any(|u| u.name == name && u.realm == realm)),
            Users::Fleet(fleet) => fleet.has_user(name, realm),
        }
    }

    fn add(&mut self, name: &str, realm: &str, password: &str) -> Result<()> {
        match self {
            Users::Store(store, _) => store.add(name, realm, password),
            Users::Fleet(fleet) => fleet.add_user(name, realm, password),
        }
    }

    fn where_(&self) -> String {
        match self {
            Users::Store(_, path) => path.display().to_string(),
            Users::Fleet(fleet) => format!("Redis at {}", fleet.shown()),
        }
    }
}

/// Runs `edgeice user`.
pub fn run(args: UserArgs) -> Result<()> {
    let mut users = match &args.redis {
        Some(url) => Users::Fleet(FleetAdmin::connect(
            url,
            args.redis_password_file.as_deref(),
        )?),
        None => {
            let path = args.db.clone().unwrap_or_else(UserStore::default_path);
            Users::Store(UserStore::open(&path, store::WRITER_PATIENCE)?, path)
        }
    };
    let place = users.where_();
    match args.command {
        UserCommand::Add {
            name,
            password,
            realm,
        } => set_password(&mut users, &name, &realm, password, "saved in")?,
        UserCommand::Passwd {
            name,
            password,
            realm,
        } => {
            if !users.exists(&name, &realm)? {
                bail!("no user {name} in realm {realm} in {place}; `edgeice user add` makes one");
            }
            set_password(&mut users, &name, &realm, password, "has a new password in")?;
        }
        UserCommand::List => {
            let list = match &mut users {
                Users::Store(store, _) => store
                    .list()?
                    .into_iter()
                    .map(|u| (u.name, u.realm))
                    .collect(),
                Users::Fleet(fleet) => fleet.users()?,
            };
            for (name, realm) in list {
                println!("{name}\t{realm}");
            }
        }
        UserCommand::Remove { name, realm } => {
            let removed = match &mut users {
                Users::Store(store, _) => store.remove(&name, &realm)?,
                Users::Fleet(fleet) => fleet.remove_user(&name, &realm)?,
            };
            if !removed {
                bail!("no user {name} in realm {realm} in {place}");
            }
            eprintln!("edgeice: user {name} removed from {place}");
        }
        UserCommand::Secret { action } => {
            let Users::Fleet(fleet) = &mut users else {
                bail!(
                    "`edgeice user secret` needs --redis URL: the user store keeps no secrets \
                     (give them to `edgeice serve --auth-secret-file`)"
                );
            };
            match action {
                SecretCommand::Add { secret } => {
                    fleet.add_secret(&secret)?;
                    eprintln!("edgeice: secret added in {place}");
                }
                SecretCommand::Remove { secret } => {
                    if !fleet.remove_secret(&secret)? {
                        bail!("no such secret in {place}");
                    }
                    eprintln!("edgeice: secret removed from {place}");
                }
                SecretCommand::Count => println!("{}", fleet.secret_count()?),
            }
        }
    }
    Ok(())
}

/// Stores `name`'s key for `password` (a random one, printed, if none).
fn set_password(
    users: &mut Users,
    name: &str,
    realm: &str,
    password: Option<String>,
    done: &str,
) -> Result<()> {
    let generated = password.is_none();
    let password = match password {
        Some(p) => p,
        None => store::random_password()?,
    };
    users.add(name, realm, &password)?;
    if generated {
        println!("{name}:{password}");
    }
    eprintln!(
        "edgeice: user {name} (realm {realm}) {done} {}",
        users.where_()
    );
    Ok(())
}
