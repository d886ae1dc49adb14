//! `whisk admin`: what OpenWhisk's `wskadmin user` and `wskadmin limits` do, on the data directory
//! of a standalone platform (which may be running: the store is safe for concurrent processes), or
//! with `--store` on a cluster's PostgreSQL store, where every controller sees the change at its
//! next lookup (controllers keep no copy of subjects or limits).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use rand::Rng;
use rand::distr::Alphanumeric;
use whisk_image::ImageStore;
use whisk_model::identity::AuthKey;
use whisk_model::names::EntityName;
use whisk_store::{PostgresOptions, PostgresTls, Store, StoreError};

use crate::config;

/// OpenWhisk refuses subject names shorter than this, so that they cannot be confused with short
/// namespace names such as `_`.
const MIN_SUBJECT_LENGTH: usize = 5;

/// Length of a generated key; OpenWhisk only accepts keys of exactly this length.
const KEY_LENGTH: usize = 64;

#[derive(Debug, Args)]
pub struct AdminArgs {
    /// The platform's data directory [default: ~/.whisk].
    #[arg(long, env = "WHISK_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// A cluster's store, `postgres://user:password@host:port/db`: users and limits are read
    /// and written there instead of in the data directory (images stay in the data directory).
    #[arg(long, env = "WHISK_STORE", global = true)]
    store: Option<String>,
    /// The PostgreSQL schema of the cluster's tables, as its controllers were given it.
    #[arg(long, env = "WHISK_STORE_SCHEMA", global = true, requires = "store")]
    store_schema: Option<String>,
    /// Connect to PostgreSQL over TLS, trusting this PEM CA file.
    #[arg(long, env = "WHISK_STORE_CA", global = true, requires = "store")]
    store_ca: Option<PathBuf>,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Subjects (users) and their namespaces and keys.
    #[command(subcommand)]
    User(UserCommand),
    /// Per-namespace throttles and limits.
    #[command(subcommand)]
    Limits(LimitsCommand),
    /// Container images for blackbox actions (`--docker IMAGE`), in the data directory's
    /// image store.
    #[command(subcommand)]
    Image(ImageCommand),
}

#[derive(Debug, Subcommand)]
enum ImageCommand {
    /// Import every image of an archive (`docker save` output or an OCI image layout tar).
    Import {
        file: PathBuf,
        /// Also name the imported image(s) so (e.g. for an archive saved without tags).
        #[arg(long)]
        tag: Vec<String>,
    },
    /// List the images in the store: digest and references.
    List,
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Create a subject (or add a namespace to an existing one) and print its `uuid:key`.
    Create {
        subject: String,
        /// The namespace to create [default: the subject's name].
        #[arg(long, short = 'n')]
        namespace: Option<String>,
        /// Use this `uuid:key` instead of generating one.
        #[arg(long, short = 'u')]
        auth: Option<String>,
    },
    /// Show a subject's namespaces and their uuids (keys are stored hashed and cannot be shown).
    Get { subject: String },
    /// Delete a subject and all of its namespaces' credentials.
    Delete { subject: String },
    /// List every subject.
    List,
    /// Block subjects: their credentials stop working at once.
    Block {
        #[arg(required = true)]
        subjects: Vec<String>,
    },
    /// Unblock subjects.
    Unblock {
        #[arg(required = true)]
        subjects: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
enum LimitsCommand {
    /// Set limits for a namespace; limits not given keep their current value.
    Set {
        namespace: String,
        #[arg(long)]
        invocations_per_minute: Option<u64>,
        #[arg(long)]
        concurrent_invocations: Option<u64>,
        #[arg(long)]
        fires_per_minute: Option<u64>,
        /// Restrict the action kinds the namespace may create (repeat for several).
        #[arg(long = "allowed-kinds", num_args = 1..)]
        allowed_kinds: Option<Vec<String>>,
        /// Whether the namespace's activations are stored.
        #[arg(long)]
        store_activations: Option<bool>,
    },
    /// Show the limits set for a namespace.
    Get { namespace: String },
    /// Remove a namespace's limits, so the system defaults apply again.
    Delete { namespace: String },
}

pub async fn run(args: AdminArgs) -> anyhow::Result<()> {
    let data_dir = match args.data_dir {
        Some(dir) => dir,
        None => config::default_data_dir()?,
    };
    let command = match args.command {
        // Images live in their own store: no need to open the entity store for them.
        AdminCommand::Image(command) => return image(&data_dir, command).await,
        other => other,
    };
    let store = match args.store {
        Some(url) => {
            let options = PostgresOptions {
                tls: match args.store_ca {
                    Some(ca_file) => PostgresTls::Required { ca_file },
                    None => PostgresTls::Disabled,
                },
                schema: args.store_schema,
                ..PostgresOptions::default()
            };
            whisk_store::open_postgres(&url, &options)
                .await
                .context("cannot open the cluster store")?
        }
        None => whisk_store::open_sqlite(&data_dir)
            .with_context(|| format!("cannot open the store in {}", data_dir.display()))?,
    };
    match command {
        AdminCommand::Image(command) => image(&data_dir, command).await,
        AdminCommand::User(command) => user(&store, command).await,
        AdminCommand::Limits(command) => limits(&store, command).await,
    }
}

/// The image store of a data directory, where the invokers of a standalone platform look.
pub(crate) fn image_store_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("images")
}

async fn image(data_dir: &Path, command: ImageCommand) -> anyhow::Result<()> {
    let dir = image_store_dir(data_dir);
    tokio::task::spawn_blocking(move || {
        let images = ImageStore::open(&dir)
            .with_context(|| format!("cannot open the image store in {}", dir.display()))?;
        match command {
            ImageCommand::Import { file, tag } => {
                let imported = images
                    .import_archive(&file, &tag)
                    .with_context(|| format!("cannot import {}", file.display()))?;
                if imported.is_empty() {
                    bail!("{} holds no image", file.display());
                }
                for image in imported {
                    println!("{} {}", image.digest, image.references.join(" "));
                }
            }
            ImageCommand::List => {
                for image in images.list().context("cannot list the images")? {
                    println!("{} {}", image.digest, image.references.join(" "));
                }
            }
        }
        Ok(())
    })
    .await
    .context("the image task failed")?
}

async fn user(store: &Store, command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Create {
            subject,
            namespace,
            auth,
        } => {
            if subject.chars().count() < MIN_SUBJECT_LENGTH {
                bail!("subject name must be at least {MIN_SUBJECT_LENGTH} characters");
            }
            let namespace = namespace.unwrap_or_else(|| subject.clone());
            EntityName::namespace(namespace.as_str())
                .map_err(|error| anyhow::anyhow!("invalid namespace '{namespace}': {error}"))?;
            let key = match auth {
                Some(text) => AuthKey::parse(&text).map_err(|error| {
                    anyhow::anyhow!("--auth must be uuid:key with a 64-character key: {error}")
                })?,
                None => generate_key(),
            };
            if store.subjects.get_subject(&subject).await?.is_some() {
                store
                    .subjects
                    .add_namespace(&subject, &namespace, &key)
                    .await
                    .with_context(|| {
                        format!("cannot add namespace '{namespace}' to '{subject}'")
                    })?;
            } else {
                store
                    .subjects
                    .create_subject(&subject, &namespace, &key)
                    .await
                    .with_context(|| format!("cannot create subject '{subject}'"))?;
            }
            println!("{key}");
        }
        UserCommand::Get { subject } => {
            let Some(found) = store.subjects.get_subject(&subject).await? else {
                bail!("subject '{subject}' does not exist");
            };
            for namespace in &found.namespaces {
                println!("{}\t{}", namespace.name, namespace.uuid);
            }
            if found.blocked {
                println!("(blocked)");
            }
        }
        UserCommand::Delete { subject } => {
            store
                .subjects
                .delete_subject(&subject)
                .await
                .with_context(|| format!("cannot delete subject '{subject}'"))?;
            println!("Subject deleted");
        }
        UserCommand::List => {
            for subject in store.subjects.list_subjects().await? {
                let namespaces: Vec<&str> = subject
                    .namespaces
                    .iter()
                    .map(|namespace| namespace.name.as_str())
                    .collect();
                let blocked = if subject.blocked { "\tblocked" } else { "" };
                println!("{}\t{}{blocked}", subject.subject, namespaces.join(","));
            }
        }
        UserCommand::Block { subjects } => set_blocked(store, &subjects, true).await?,
        UserCommand::Unblock { subjects } => set_blocked(store, &subjects, false).await?,
    }
    Ok(())
}

async fn set_blocked(store: &Store, subjects: &[String], blocked: bool) -> anyhow::Result<()> {
    let verb = if blocked { "blocked" } else { "unblocked" };
    for subject in subjects {
        store
            .subjects
            .set_blocked(subject, blocked)
            .await
            .with_context(|| format!("cannot change subject '{subject}'"))?;
        println!("'{subject}' {verb} successfully");
    }
    Ok(())
}

async fn limits(store: &Store, command: LimitsCommand) -> anyhow::Result<()> {
    match command {
        LimitsCommand::Set {
            namespace,
            invocations_per_minute,
            concurrent_invocations,
            fires_per_minute,
            allowed_kinds,
            store_activations,
        } => {
            let mut limits = store
                .subjects
                .get_limits(&namespace)
                .await?
                .unwrap_or_default();
            if let Some(value) = invocations_per_minute {
                limits.invocations_per_minute = Some(value);
            }
            if let Some(value) = concurrent_invocations {
                limits.concurrent_invocations = Some(value);
            }
            if let Some(value) = fires_per_minute {
                limits.fires_per_minute = Some(value);
            }
            if let Some(kinds) = allowed_kinds {
                limits.allowed_kinds = Some(kinds);
            }
            if let Some(value) = store_activations {
                limits.store_activations = Some(value);
            }
            store.subjects.set_limits(&namespace, &limits).await?;
            println!("Limits successfully set for \"{namespace}\"");
        }
        LimitsCommand::Get { namespace } => {
            let limits = store.subjects.get_limits(&namespace).await?;
            match limits.filter(|limits| !limits.is_empty()) {
                Some(limits) => println!("{}", serde_json::to_string_pretty(&limits)?),
                None => println!("No limits found, default system limits apply"),
            }
        }
        LimitsCommand::Delete { namespace } => {
            match store.subjects.delete_limits(&namespace).await {
                Ok(()) => println!("Limits deleted"),
                Err(StoreError::NotFound(_)) => {
                    println!("No limits found, default system limits apply");
                }
                Err(error) => return Err(error.into()),
            }
        }
    }
    Ok(())
}

/// A fresh uuid and 64 random alphanumerics, the shape of the keys OpenWhisk hands out.
fn generate_key() -> AuthKey {
    let key: String = rand::rng()
        .sample_iter(&Alphanumeric)
        .take(KEY_LENGTH)
        .map(char::from)
        .collect();
    AuthKey {
        uuid: uuid::Uuid::new_v4().to_string(),
        key,
    }
}
