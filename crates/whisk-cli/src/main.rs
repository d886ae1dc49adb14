//! `wsk`: the OpenWhisk command-line client. It talks only HTTP to the REST API, so it drives
//! whisk-rs and Apache OpenWhisk alike.

use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use base64::Engine;
use clap::{ArgAction, Args, Parser, Subcommand};
use reqwest::Method;
use serde_json::{Value, json};
use whisk_cli::client::{Auth, Client, ClientError, TlsOptions};
use whisk_cli::config::{self, Props};
use whisk_cli::input::merge_pairs;
use whisk_cli::manifest::{infer_kind, is_binary};
use whisk_cli::names::QualifiedName;

use crate::action_get::get_action;

/// Writes a line to stdout. Unlike `println!` it does not panic when the reader went away
/// (`wsk action get x | head`); there is nobody left to tell, so the write error is dropped.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

mod action_get;
mod activations;
mod api;
mod entities;
mod feeds;
mod invoke;
mod project;

#[derive(Debug, Parser)]
#[command(name = "wsk", version, about = "OpenWhisk command-line client")]
struct Cli {
    #[command(flatten)]
    global: GlobalFlags,
    #[command(subcommand)]
    command: Command,
}

/// Flags accepted anywhere on the command line. `--auth`, `--apihost` and `--apiversion` may
/// appear without a value because `wsk property get --auth` uses them as selectors.
#[derive(Debug, Args)]
struct GlobalFlags {
    /// Authorization key (`uuid:key`).
    #[arg(short = 'u', long, global = true, num_args = 0..=1, default_missing_value = "")]
    auth: Option<String>,
    /// Host of the API, `host[:port]` (HTTPS) or `http://host:port`.
    #[arg(long, global = true, num_args = 0..=1, default_missing_value = "")]
    apihost: Option<String>,
    /// API version.
    #[arg(long, global = true, num_args = 0..=1, default_missing_value = "")]
    apiversion: Option<String>,
    /// Skip TLS certificate verification (for self-signed deployments).
    #[arg(short = 'i', long, global = true)]
    insecure: bool,
    /// Client certificate (PEM) for APIs that authenticate clients by certificate.
    #[arg(long, global = true, value_name = "FILE", num_args = 0..=1, default_missing_value = "")]
    cert: Option<String>,
    /// Private key (PEM) of the client certificate.
    #[arg(long, global = true, value_name = "FILE", num_args = 0..=1, default_missing_value = "")]
    key: Option<String>,
    /// Print HTTP requests and responses on stderr.
    #[arg(short = 'v', long, global = true)]
    verbose: bool,
    /// Print debugging output on stderr.
    #[arg(short = 'd', long, global = true)]
    debug: bool,
}

/// Parsed once per process, so the size gap between variants costs nothing worth boxing for.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Work with actions.
    #[command(subcommand)]
    Action(ActionCommand),
    /// Read activation records, logs and results.
    #[command(subcommand)]
    Activation(activations::ActivationCommand),
    /// Work with packages.
    #[command(subcommand)]
    Package(entities::PackageCommand),
    /// Work with triggers.
    #[command(subcommand)]
    Trigger(entities::TriggerCommand),
    /// Work with rules.
    #[command(subcommand)]
    Rule(entities::RuleCommand),
    /// Work with namespaces.
    #[command(subcommand)]
    Namespace(entities::NamespaceCommand),
    /// Work with the local properties file.
    #[command(subcommand)]
    Property(PropertyCommand),
    /// Work with APIs: routes from an API path and verb to web actions.
    #[command(subcommand)]
    Api(api::ApiCommand),
    /// Deploy or undeploy a wskdeploy manifest (`manifest.yaml`).
    #[command(subcommand)]
    Project(project::ProjectCommand),
    /// List every entity of a namespace (default: the configured one).
    List {
        namespace: Option<String>,
        /// Sort each collection by name.
        #[arg(short = 'n', long)]
        name_sort: bool,
    },
    /// Install SDK artifacts; `bashauto` writes the bash completion script.
    #[command(subcommand)]
    Sdk(SdkCommand),
    /// Print a shell completion script: `source <(wsk completion bash)`.
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
enum SdkCommand {
    /// Install an SDK artifact: `bashauto` (the bash completion script) is the one supported.
    Install {
        /// `bashauto`; wsk's `docker` and `ios` downloads are not offered.
        component: Option<String>,
        /// Print the bash completion script instead of writing it to a file.
        #[arg(short = 's', long)]
        stdout: bool,
    },
}

/// The file `wsk sdk install bashauto` writes in the working directory (wsk's name for it).
const BASH_COMPLETION_FILE: &str = "wsk_cli_bash_completion.sh";

/// `wsk sdk install COMPONENT`. Only `bashauto` is supported: wsk's `docker` and `ios`
/// components download archives from the API host, which whisk-rs does not serve.
fn sdk(command: SdkCommand) -> anyhow::Result<()> {
    let SdkCommand::Install { component, stdout } = command;
    let Some(component) = component else {
        bail!(
            "The SDK component argument is missing. One component (docker, ios, or bashauto) \
             must be specified"
        );
    };
    let component = component.to_lowercase();
    match component.as_str() {
        "bashauto" => {
            let mut command = <Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(clap_complete::Shell::Bash, &mut command, "wsk", &mut script);
            if stdout {
                use std::io::Write as _;
                let _ = std::io::stdout().lock().write_all(&script);
            } else {
                std::fs::write(BASH_COMPLETION_FILE, &script)
                    .with_context(|| format!("Unable to generate '{BASH_COMPLETION_FILE}'"))?;
                out!(
                    "The bash auto-completion script ({BASH_COMPLETION_FILE}) is installed in the current directory."
                );
                out!(
                    "To enable command line completion of wsk commands, source the auto completion script into your bash environment"
                );
            }
            Ok(())
        }
        "docker" | "ios" => bail!(
            "The {component} SDK is not supported: this wsk installs only bashauto, the bash \
             completion script"
        ),
        _ => bail!(
            "The SDK component argument '{component}' is invalid. Valid components are docker, \
             ios and bashauto"
        ),
    }
}

#[derive(Debug, Subcommand)]
enum PropertyCommand {
    /// Set properties (`--auth`, `--apihost`, `--apiversion`, `--namespace`).
    Set {
        #[arg(long)]
        namespace: Option<String>,
    },
    /// Remove properties named by the selector flags.
    Unset {
        #[arg(long)]
        namespace: bool,
    },
    /// Show properties; all of them unless selector flags are given.
    Get {
        #[arg(long)]
        namespace: bool,
        #[arg(long)]
        all: bool,
        /// The version of this CLI.
        #[arg(long)]
        cliversion: bool,
        /// The build of the API host (asks the server).
        #[arg(long)]
        apibuild: bool,
        /// The build number of the API host (asks the server).
        #[arg(long)]
        apibuildno: bool,
        /// `std` shows a label before each value; `raw` only the values, for scripts.
        #[arg(short = 'o', long, value_enum, default_value_t = Output::Std)]
        output: Output,
    },
}

/// How `property get` prints each property.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Output {
    Std,
    Raw,
}

/// One `property get` line: the label padded to 20 columns (at least one space), or with
/// `-o raw` the value alone.
fn property_line(output: Output, label: &str, value: &str) -> String {
    match output {
        Output::Std => format!("{label:<19} {value}"),
        Output::Raw => value.to_string(),
    }
}

#[derive(Debug, Subcommand)]
enum ActionCommand {
    /// Create an action.
    Create(ActionPut),
    /// Update an action.
    Update(ActionPut),
    /// Show an action, one field of it, its summary, its web URL, or save its code.
    Get(ActionGet),
    /// List actions of a namespace or package.
    List {
        namespace: Option<String>,
        #[arg(short = 's', long, default_value_t = 0)]
        skip: u64,
        #[arg(short = 'l', long, default_value_t = 30)]
        limit: u64,
        /// Sort by name instead of the server's order (most recently updated first).
        #[arg(short = 'n', long)]
        name_sort: bool,
    },
    /// Delete an action.
    Delete { name: String },
    /// Invoke an action.
    Invoke(invoke::Invoke),
}

#[derive(Debug, Args)]
pub(crate) struct ActionGet {
    pub(crate) name: String,
    /// Print only this top-level field of the action (e.g. `exec`, `parameters`).
    pub(crate) field: Option<String>,
    /// Print a summary: name, description and parameter names.
    #[arg(short = 's', long)]
    pub(crate) summary: bool,
    /// Print the URL the action answers on as a web action.
    #[arg(short = 'r', long)]
    pub(crate) url: bool,
    /// Save the code to `NAME.<extension of its kind>` in the current directory.
    #[arg(long)]
    pub(crate) save: bool,
    /// Save the code to this file.
    #[arg(long, value_name = "FILE")]
    pub(crate) save_as: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct ActionPut {
    name: String,
    /// The code file, or with `--copy` the name of the action to copy.
    file: Option<PathBuf>,
    /// Runtime kind, e.g. `nodejs:20`; inferred from the file extension when absent.
    #[arg(long)]
    kind: Option<String>,
    /// Entry point of the action.
    #[arg(long)]
    main: Option<String>,
    /// Comma-separated action names making up a sequence.
    #[arg(long)]
    sequence: Option<String>,
    #[arg(short = 't', long)]
    timeout: Option<u64>,
    #[arg(short = 'm', long)]
    memory: Option<u64>,
    #[arg(short = 'l', long)]
    logsize: Option<u64>,
    #[arg(short = 'c', long)]
    concurrency: Option<u64>,
    /// Parameter `KEY VALUE`; the value is JSON when it parses as JSON, else a string.
    #[arg(short = 'p', long = "param", num_args = 2, value_names = ["KEY", "VALUE"], action = ArgAction::Append)]
    param: Vec<String>,
    /// Annotation `KEY VALUE`; the value is JSON when it parses as JSON, else a string.
    #[arg(short = 'a', long = "annotation", num_args = 2, value_names = ["KEY", "VALUE"], action = ArgAction::Append)]
    annotation: Vec<String>,
    /// JSON file whose top-level keys become parameters (`-p` wins on the same key).
    #[arg(short = 'P', long = "param-file", value_name = "FILE")]
    param_file: Option<PathBuf>,
    /// JSON file whose top-level keys become annotations (`-a` wins on the same key).
    #[arg(short = 'A', long = "annotation-file", value_name = "FILE")]
    annotation_file: Option<PathBuf>,
    /// Make the action a web action: true|yes, false|no or raw.
    #[arg(long)]
    web: Option<String>,
    /// Protect a web action: a secret callers send in `X-Require-Whisk-Auth`, `true` for a
    /// generated one, `false` to remove the protection.
    #[arg(long, value_name = "SECRET")]
    web_secure: Option<String>,
    /// Run the action in this Docker image (a blackbox action); the file, if any, is its code.
    #[arg(long, value_name = "IMAGE", conflicts_with_all = ["native", "sequence", "kind"])]
    docker: Option<String>,
    /// Run the file in the stock `openwhisk/dockerskeleton`: an `exec` script, or a zip holding
    /// an `exec` binary (the skeleton unzips binary code before running it).
    #[arg(long, conflicts_with_all = ["sequence", "kind"])]
    native: bool,
    /// Treat FILE as the name of an existing action and copy it.
    #[arg(long, conflicts_with_all = ["docker", "native", "sequence", "kind"])]
    copy: bool,
    /// Remove these annotations (update).
    #[arg(long = "del-annotation", value_name = "KEY", action = ArgAction::Append)]
    del_annotation: Vec<String>,
}

/// The effective settings after layering flags over environment over the properties file.
#[derive(Debug)]
struct Settings {
    apihost: Option<String>,
    auth: Option<String>,
    apiversion: String,
    namespace: String,
    verbose: bool,
    tls: TlsOptions,
}

impl Settings {
    fn resolve(global: &GlobalFlags, props: &Props) -> Self {
        let pick = |flag: &Option<String>, env: &str, key: &str| {
            flag.clone()
                .filter(|v| !v.is_empty())
                .or_else(|| std::env::var(env).ok().filter(|v| !v.is_empty()))
                .or_else(|| props.get(key).map(str::to_string))
        };
        Self {
            apihost: pick(&global.apihost, "WHISK_APIHOST", "APIHOST"),
            auth: pick(&global.auth, "WHISK_AUTH", "AUTH"),
            apiversion: pick(&global.apiversion, "WHISK_APIVERSION", "APIVERSION")
                .unwrap_or_else(|| "v1".to_string()),
            namespace: props
                .get("NAMESPACE")
                .filter(|ns| !ns.is_empty())
                .unwrap_or("_")
                .to_string(),
            verbose: global.verbose || global.debug,
            tls: TlsOptions {
                insecure: global.insecure,
                cert: global
                    .cert
                    .clone()
                    .filter(|v| !v.is_empty())
                    .map(PathBuf::from)
                    .or_else(|| {
                        props
                            .get("CERT")
                            .filter(|v| !v.is_empty())
                            .map(PathBuf::from)
                    }),
                key: global
                    .key
                    .clone()
                    .filter(|v| !v.is_empty())
                    .map(PathBuf::from)
                    .or_else(|| {
                        props
                            .get("KEY")
                            .filter(|v| !v.is_empty())
                            .map(PathBuf::from)
                    }),
            },
        }
    }

    fn client(&self) -> anyhow::Result<Client> {
        let base = config::api_base(self.apihost.as_deref().unwrap_or(""), &self.apiversion)?;
        let auth = self.auth.as_deref().map(Auth::parse);
        Ok(Client::new(base, auth, self.verbose, &self.tls)?)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(exit_code(&err))
        }
    }
}

/// Exit statuses follow `wsk`: an HTTP error status modulo 256 (404 → 148, 409 → 153), 3 when the
/// API is unreachable, 1 otherwise.
fn exit_code(err: &anyhow::Error) -> u8 {
    match err
        .chain()
        .find_map(|cause| cause.downcast_ref::<ClientError>())
    {
        Some(ClientError::Api { status, .. }) => u8::try_from(status % 256).unwrap_or(1),
        Some(ClientError::Transport(_)) => 3,
        _ => 1,
    }
}

#[tokio::main(flavor = "current_thread")]
async fn run(cli: Cli) -> anyhow::Result<()> {
    // Completion needs no configuration, so it works before `wsk property set` was ever run.
    if let Command::Completion { shell } = cli.command {
        let mut command = <Cli as clap::CommandFactory>::command();
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut command, "wsk", &mut script);
        use std::io::Write as _;
        let _ = std::io::stdout().lock().write_all(&script);
        return Ok(());
    }
    // Neither does the completion file of `sdk install bashauto`.
    if let Command::Sdk(command) = cli.command {
        return sdk(command);
    }
    let path = Props::location()?;
    let props = Props::load(&path)?;
    match cli.command {
        Command::Property(command) => {
            let settings = Settings::resolve(&cli.global, &props);
            let flags = cli_property_flags(&command);
            property(command, &cli.global, props, &path)?;
            server_properties(&flags, &settings).await
        }
        Command::Action(command) => action(command, &Settings::resolve(&cli.global, &props)).await,
        Command::Activation(command) => {
            activations::activation(command, &Settings::resolve(&cli.global, &props)).await
        }
        Command::Package(command) => {
            entities::package(command, &Settings::resolve(&cli.global, &props)).await
        }
        Command::Trigger(command) => {
            entities::trigger(command, &Settings::resolve(&cli.global, &props)).await
        }
        Command::Rule(command) => {
            entities::rule(command, &Settings::resolve(&cli.global, &props)).await
        }
        Command::Namespace(command) => {
            entities::namespace(command, &Settings::resolve(&cli.global, &props)).await
        }
        Command::Api(command) => api::api(command, &Settings::resolve(&cli.global, &props)).await,
        Command::Project(command) => {
            project::project(command, &Settings::resolve(&cli.global, &props)).await
        }
        Command::List {
            namespace,
            name_sort,
        } => {
            entities::list_all(
                &Settings::resolve(&cli.global, &props),
                namespace,
                name_sort,
            )
            .await
        }
        // Answered above, before the configuration is read.
        Command::Completion { .. } | Command::Sdk(_) => Ok(()),
    }
}

/// The `property get` selectors that are not in the properties file, and the output format:
/// `(all, cliversion, apibuild, apibuildno, output)`.
fn cli_property_flags(command: &PropertyCommand) -> (bool, bool, bool, bool, Output) {
    match command {
        PropertyCommand::Get {
            all,
            cliversion,
            apibuild,
            apibuildno,
            output,
            ..
        } => (*all, *cliversion, *apibuild, *apibuildno, *output),
        _ => (false, false, false, false, Output::Std),
    }
}

/// Prints the CLI version and the API host's build after the file-backed properties. They are
/// shown only when asked for (or with `--all`), so a plain `property get` never needs the network.
async fn server_properties(
    flags: &(bool, bool, bool, bool, Output),
    settings: &Settings,
) -> anyhow::Result<()> {
    let (all, cliversion, apibuild, apibuildno, output) = *flags;
    let row = |label: &str, value: &str| property_line(output, label, value);
    if all || cliversion {
        out!("{}", row("whisk CLI version", env!("CARGO_PKG_VERSION")));
    }
    if all || apibuild || apibuildno {
        let info = settings
            .client()?
            .send(Method::GET, &[], &[], None)
            .await
            .context("Unable to obtain API build information")?;
        let field = |key: &str| info[key].as_str().unwrap_or("Unknown").to_string();
        if all || apibuild {
            out!("{}", row("whisk API build", &field("build")));
        }
        if all || apibuildno {
            out!("{}", row("whisk API build number", &field("buildno")));
        }
    }
    Ok(())
}

fn property(
    command: PropertyCommand,
    global: &GlobalFlags,
    mut props: Props,
    path: &Path,
) -> anyhow::Result<()> {
    let given = |flag: &Option<String>| flag.clone().filter(|v| !v.is_empty());
    match command {
        PropertyCommand::Set { namespace } => {
            let mut messages = Vec::new();
            if let Some(auth) = given(&global.auth) {
                props.set("AUTH", &auth);
                messages.push(
                    "ok: whisk auth set. Run 'wsk property get --auth' to see the new value."
                        .to_string(),
                );
            }
            if let Some(host) = given(&global.apihost) {
                props.set("APIHOST", &host);
                messages.push(format!("ok: whisk API host set to {host}"));
            }
            if let Some(version) = given(&global.apiversion) {
                props.set("APIVERSION", &version);
                messages.push(format!("ok: whisk API version set to {version}"));
            }
            if let Some(ns) = namespace {
                props.set("NAMESPACE", &ns);
                messages.push(format!("ok: whisk namespace set to {ns}"));
            }
            // Stored as given: a relative path keeps meaning "relative to where wsk runs", as
            // it would on the command line.
            if let Some(cert) = given(&global.cert) {
                props.set("CERT", &cert);
                messages.push(format!("ok: client cert set to {cert}"));
            }
            if let Some(key) = given(&global.key) {
                props.set("KEY", &key);
                messages.push(format!("ok: client key set to {key}"));
            }
            if messages.is_empty() {
                bail!(
                    "no properties given; use --auth, --apihost, --apiversion, --namespace, --cert or --key"
                );
            }
            props.save(path)?;
            messages.iter().for_each(|m| out!("{m}"));
        }
        PropertyCommand::Unset { namespace } => {
            let selected = [
                (global.auth.is_some(), "AUTH", "whisk auth"),
                (global.apihost.is_some(), "APIHOST", "whisk API host"),
                (
                    global.apiversion.is_some(),
                    "APIVERSION",
                    "whisk API version",
                ),
                (namespace, "NAMESPACE", "whisk namespace"),
                (global.cert.is_some(), "CERT", "client cert"),
                (global.key.is_some(), "KEY", "client key"),
            ];
            if !selected.iter().any(|(on, _, _)| *on) {
                bail!(
                    "no properties given; use --auth, --apihost, --apiversion, --namespace, --cert or --key"
                );
            }
            for (_, key, label) in selected.iter().filter(|(on, _, _)| *on) {
                props.unset(key);
                out!("ok: {label} unset.");
            }
            props.save(path)?;
        }
        PropertyCommand::Get {
            namespace,
            all,
            cliversion,
            apibuild,
            apibuildno,
            output,
        } => {
            let selectors = [
                global.auth.is_some(),
                global.apihost.is_some(),
                global.apiversion.is_some(),
                namespace,
                global.cert.is_some(),
                global.key.is_some(),
            ];
            let server_side = cliversion || apibuild || apibuildno;
            let everything = all || !(server_side || selectors.iter().any(|on| *on));
            let rows = [
                (selectors[4], "client cert", props.get("CERT").unwrap_or("")),
                (selectors[5], "client key", props.get("KEY").unwrap_or("")),
                (selectors[0], "whisk auth", props.get("AUTH").unwrap_or("")),
                (
                    selectors[1],
                    "whisk API host",
                    props.get("APIHOST").unwrap_or(""),
                ),
                (
                    selectors[2],
                    "whisk API version",
                    props.get("APIVERSION").unwrap_or("v1"),
                ),
                (
                    selectors[3],
                    "whisk namespace",
                    props.get("NAMESPACE").unwrap_or("_"),
                ),
            ];
            for (_, label, value) in rows.iter().filter(|(on, _, _)| everything || *on) {
                out!("{}", property_line(output, label, value));
            }
        }
    }
    Ok(())
}

async fn action(command: ActionCommand, settings: &Settings) -> anyhow::Result<()> {
    let client = settings.client()?;
    match command {
        ActionCommand::Create(put) => put_action(&client, settings, put, false).await,
        ActionCommand::Update(put) => put_action(&client, settings, put, true).await,
        ActionCommand::Get(get) => get_action(&client, settings, get).await,
        ActionCommand::Invoke(call) => invoke::invoke(call, settings).await,
        ActionCommand::Delete { name } => {
            let qualified = QualifiedName::parse(&name, &settings.namespace)?;
            client
                .send(
                    Method::DELETE,
                    &entity_path(&qualified, "actions"),
                    &[],
                    None,
                )
                .await
                .with_context(|| format!("Unable to delete action '{name}'"))?;
            out!("ok: deleted action {name}");
            Ok(())
        }
        ActionCommand::List {
            namespace,
            skip,
            limit,
            name_sort,
        } => {
            let (ns, package) = match namespace.as_deref() {
                None => (settings.namespace.clone(), None),
                Some(scope) => match scope.strip_prefix('/') {
                    Some(rest) => match rest.split_once('/') {
                        Some((ns, pkg)) if !pkg.is_empty() => {
                            (ns.to_string(), Some(pkg.to_string()))
                        }
                        _ => (rest.trim_end_matches('/').to_string(), None),
                    },
                    None => (settings.namespace.clone(), Some(scope.to_string())),
                },
            };
            let mut segments = vec!["namespaces", ns.as_str(), "actions"];
            if let Some(package) = &package {
                segments.push(package);
                segments.push("");
            }
            let query = [("limit", limit.to_string()), ("skip", skip.to_string())];
            let body = client
                .send(Method::GET, &segments, &query, None)
                .await
                .context("Unable to obtain the list of actions")?;
            let body = if name_sort {
                entities::sorted_by_name(body)
            } else {
                body
            };
            out!("actions");
            for item in body.as_array().map(Vec::as_slice).unwrap_or_default() {
                out!("{}", list_row(item));
            }
            Ok(())
        }
    }
}

/// One row of `wsk action list`: the fully qualified name padded to 70 columns, the publish
/// state and the runtime kind (from `exec.kind`, or the `exec` annotation list results carry).
fn list_row(item: &Value) -> String {
    let namespace = item["namespace"].as_str().unwrap_or("");
    let name = item["name"].as_str().unwrap_or("");
    let shared = if item["publish"].as_bool().unwrap_or(false) {
        "shared"
    } else {
        "private"
    };
    let kind = item["exec"]["kind"].as_str().or_else(|| {
        item["annotations"]
            .as_array()?
            .iter()
            .find(|a| a["key"] == "exec")?["value"]
            .as_str()
    });
    format!(
        "{:<70} {shared} {}",
        format!("/{namespace}/{name}"),
        kind.unwrap_or("")
    )
    .trim_end()
    .to_string()
}

fn entity_path<'a>(name: &'a QualifiedName, collection: &'a str) -> Vec<&'a str> {
    let mut segments = vec!["namespaces", name.namespace.as_str(), collection];
    segments.extend(name.segments());
    segments
}

/// JSON indented by four spaces, the layout `wsk` users and scripts are used to.
fn pretty(value: &Value) -> anyhow::Result<String> {
    use serde::Serialize;
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
    value.serialize(&mut serializer)?;
    Ok(String::from_utf8(out)?)
}

/// `-p`/`-a` pairs as `[{key, value}]`; values are JSON when they parse, strings otherwise.
fn key_values(flat: &[String]) -> Vec<Value> {
    flat.chunks(2)
        .filter_map(|pair| match pair {
            [key, value] => Some(json!({
                "key": key,
                "value": serde_json::from_str::<Value>(value)
                    .unwrap_or_else(|_| Value::String(value.clone())),
            })),
            _ => None,
        })
        .collect()
}

fn web_annotations(web: &str) -> anyhow::Result<Vec<Value>> {
    let (export, raw) = match web {
        "true" | "yes" => (true, false),
        "raw" => (true, true),
        "false" | "no" => (false, false),
        other => bail!("invalid --web value '{other}': use true, false, yes, no or raw"),
    };
    Ok(vec![
        json!({"key": "web-export", "value": export}),
        json!({"key": "raw-http", "value": raw}),
        json!({"key": "final", "value": export}),
    ])
}

async fn put_action(
    client: &Client,
    settings: &Settings,
    put: ActionPut,
    overwrite: bool,
) -> anyhow::Result<()> {
    let verb = if overwrite { "update" } else { "create" };
    let name = put.name.clone();
    let copied = match (put.copy, &put.file) {
        (false, _) => None,
        (true, None) => bail!("Unable to {verb} action '{name}': --copy needs the action to copy"),
        (true, Some(source)) => {
            let source = source.to_string_lossy().into_owned();
            let qualified = QualifiedName::parse(&source, &settings.namespace)?;
            let found = client
                .send(Method::GET, &entity_path(&qualified, "actions"), &[], None)
                .await
                .with_context(|| format!("Unable to {verb} action '{name}'"))?;
            Some(found)
        }
    };
    let body = action_body(put, settings, overwrite, copied)
        .with_context(|| format!("Unable to {verb} action '{name}'"))?;
    let qualified = QualifiedName::parse(&name, &settings.namespace)?;
    client
        .send(
            Method::PUT,
            &entity_path(&qualified, "actions"),
            &[("overwrite", overwrite.to_string())],
            Some(&body),
        )
        .await
        .with_context(|| format!("Unable to {verb} action '{name}'"))?;
    out!("ok: {verb}d action {name}");
    Ok(())
}

/// The image `--native` runs in: OpenWhisk's stock skeleton, which executes the `exec` binary
/// it is given as code.
const NATIVE_IMAGE: &str = "openwhisk/dockerskeleton";

/// The `exec` of a blackbox action: the image, plus the file as code when one is given.
fn blackbox_exec(image: &str, file: Option<&Path>, main: Option<&str>) -> anyhow::Result<Value> {
    let mut exec = serde_json::Map::new();
    exec.insert("kind".into(), json!("blackbox"));
    exec.insert("image".into(), json!(image));
    if let Some(file) = file {
        let bytes =
            std::fs::read(file).with_context(|| format!("cannot read '{}'", file.display()))?;
        if is_binary(file) {
            let code = base64::engine::general_purpose::STANDARD.encode(&bytes);
            exec.insert("code".into(), Value::String(code));
            exec.insert("binary".into(), Value::Bool(true));
        } else {
            let code = String::from_utf8(bytes)
                .with_context(|| format!("'{}' is not UTF-8 text", file.display()))?;
            exec.insert("code".into(), Value::String(code));
        }
    }
    if let Some(main) = main {
        exec.insert("main".into(), json!(main));
    }
    Ok(Value::Object(exec))
}

/// A secret for `--web-secure true`. It only has to be unguessable enough for a shared-secret
/// header, and the standard library's randomly keyed hasher gives that without another
/// dependency; it is kept below 2^53 so JavaScript clients read it exactly.
fn generated_secret() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    hasher.finish() & ((1 << 53) - 1)
}

fn action_body(
    put: ActionPut,
    settings: &Settings,
    overwrite: bool,
    copied: Option<Value>,
) -> anyhow::Result<Value> {
    let mut body = serde_json::Map::new();
    let exec = match (&put.sequence, &put.file) {
        _ if copied.is_some() => copied.as_ref().map(|source| source["exec"].clone()),
        (None, file) if put.docker.is_some() || put.native => {
            let image = put.docker.as_deref().unwrap_or(NATIVE_IMAGE);
            if put.native && file.is_none() {
                bail!("--native needs the executable or zip file");
            }
            Some(blackbox_exec(image, file.as_deref(), put.main.as_deref())?)
        }
        (Some(_), Some(_)) => bail!("a sequence takes no file"),
        (Some(list), None) => {
            let components = list
                .split(',')
                .map(|c| QualifiedName::parse(c.trim(), &settings.namespace))
                .map(|q| q.map(|q| Value::String(q.fully_qualified())))
                .collect::<Result<Vec<_>, _>>()?;
            Some(json!({"kind": "sequence", "components": components}))
        }
        (None, Some(file)) => {
            let kind = match &put.kind {
                Some(kind) => kind.clone(),
                None => infer_kind(file).map(str::to_string).with_context(|| {
                    format!("cannot infer a kind from '{}'; use --kind", file.display())
                })?,
            };
            let bytes =
                std::fs::read(file).with_context(|| format!("cannot read '{}'", file.display()))?;
            let mut exec = serde_json::Map::new();
            exec.insert("kind".into(), Value::String(kind));
            if is_binary(file) {
                let code = base64::engine::general_purpose::STANDARD.encode(&bytes);
                exec.insert("code".into(), Value::String(code));
                exec.insert("binary".into(), Value::Bool(true));
            } else {
                let code = String::from_utf8(bytes)
                    .with_context(|| format!("'{}' is not UTF-8 text", file.display()))?;
                exec.insert("code".into(), Value::String(code));
            }
            if let Some(main) = &put.main {
                exec.insert("main".into(), Value::String(main.clone()));
            }
            Some(Value::Object(exec))
        }
        (None, None) if !overwrite => bail!("an action file or --sequence is required"),
        (None, None) => None,
    };
    if let Some(exec) = exec {
        body.insert("exec".into(), exec);
    }
    // A copy starts from the source's parameters, annotations (less the `exec` one the server
    // sets itself) and limits; flags given with `--copy` are laid over them.
    let source_pairs = |field: &str| -> Vec<Value> {
        copied
            .as_ref()
            .and_then(|source| source[field].as_array())
            .map(|pairs| {
                pairs
                    .iter()
                    .filter(|p| field != "annotations" || p["key"] != "exec")
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    };
    let parameters = merge_pairs(
        source_pairs("parameters"),
        entities::pairs_from(&put.param, put.param_file.as_deref())?,
    );
    if !parameters.is_empty() {
        body.insert("parameters".into(), Value::Array(parameters));
    }
    let mut annotations = merge_pairs(
        source_pairs("annotations"),
        entities::pairs_from(&put.annotation, put.annotation_file.as_deref())?,
    );
    if let Some(web) = &put.web {
        annotations = merge_pairs(annotations, web_annotations(web)?);
    }
    let mut deleted = put.del_annotation.clone();
    match put.web_secure.as_deref() {
        None => {}
        Some("false") => deleted.push("require-whisk-auth".to_string()),
        Some("true") => {
            annotations = merge_pairs(
                annotations,
                vec![json!({"key": "require-whisk-auth", "value": generated_secret()})],
            )
        }
        Some(secret) => {
            annotations = merge_pairs(
                annotations,
                vec![json!({"key": "require-whisk-auth", "value": secret})],
            )
        }
    }
    if !annotations.is_empty() {
        body.insert("annotations".into(), Value::Array(annotations));
    }
    if !deleted.is_empty() {
        body.insert("delAnnotations".into(), json!(deleted));
    }
    let mut limits = copied
        .as_ref()
        .and_then(|source| source["limits"].as_object().cloned())
        .unwrap_or_default();
    for (key, value) in [
        ("timeout", put.timeout),
        ("memory", put.memory),
        ("logs", put.logsize),
        ("concurrency", put.concurrency),
    ] {
        if let Some(value) = value {
            limits.insert(key.into(), json!(value));
        }
    }
    if !limits.is_empty() {
        body.insert("limits".into(), Value::Object(limits));
    }
    Ok(Value::Object(body))
}
