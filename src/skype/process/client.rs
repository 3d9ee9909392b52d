//! The command line of one interface's client: `skype-sim client ...` or the configured real
//! client command, with its display, profile directory and piped credentials.

use super::child::Spec;
use crate::config::{ClientKind, ClientsSettings, ConfigError, InterfaceConfig, Secret};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Credentials(Box<ConfigError>),
    #[error("clients.command is empty")]
    NoCommand,
    #[error("cannot create the profile directory {path}: {source}")]
    Profile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// `skype-sim`: the configured path, else beside the running executable, else from $PATH.
pub fn sim_binary(clients: &ClientsSettings) -> PathBuf {
    if let Some(path) = &clients.sim_binary {
        return path.clone();
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("skype-sim")))
        .filter(|candidate| candidate.is_file())
        .unwrap_or_else(|| PathBuf::from("skype-sim"))
}

/// `skype-sim network --listen <network_listen> --accounts <n>`.
pub fn network_spec(clients: &ClientsSettings, accounts: usize) -> Spec {
    Spec::new(
        sim_binary(clients),
        vec![
            "network".into(),
            "--listen".into(),
            clients.network_listen.to_string(),
            "--accounts".into(),
            accounts.to_string(),
        ],
    )
}

/// Enough emulated `userN` accounts for every interface: the highest N configured, and never
/// fewer than the emulator's eight.
pub fn sim_accounts_needed(interfaces: &[InterfaceConfig]) -> usize {
    interfaces
        .iter()
        .filter_map(|iface| {
            let digits = iface.skype_user.strip_prefix("user")?;
            digits.parse::<usize>().ok()
        })
        .fold(8, usize::max)
}

pub fn dbpath(clients: &ClientsSettings, iface: &InterfaceConfig) -> Option<PathBuf> {
    clients
        .dbpath_root
        .as_ref()
        .map(|root| root.join(&iface.name))
}

/// The client of `iface`. For a real client this reads the account's password (file or
/// environment) now, so that a changed password is picked up by the next restart.
pub fn client_spec(
    clients: &ClientsSettings,
    iface: &InterfaceConfig,
) -> Result<Spec, ClientError> {
    match clients.kind {
        ClientKind::Sim => Ok(Spec::new(
            sim_binary(clients),
            vec![
                "client".into(),
                "--display".into(),
                iface.x11_display.clone(),
                "--user".into(),
                iface.skype_user.clone(),
                "--network".into(),
                clients.network_address(),
            ],
        )),
        ClientKind::Skype => {
            let dbpath = dbpath(clients, iface);
            if let Some(dir) = &dbpath {
                create_private_dir(dir)?;
            }
            let substitute = |arg: &str| {
                let arg = arg.replace("{display}", &iface.x11_display);
                match &dbpath {
                    Some(dir) => arg.replace("{dbpath}", &dir.display().to_string()),
                    None => arg,
                }
            };
            let mut words = clients.command.iter().map(|a| substitute(a));
            let program = words.next().ok_or(ClientError::NoCommand)?;
            let password = clients
                .skype_password(&iface.skype_user)
                .map_err(|e| ClientError::Credentials(Box::new(e)))?;
            let mut spec = Spec::new(program, words.collect());
            // The real client finds its X server through DISPLAY, as the original scripts did.
            spec.env.push(("DISPLAY".into(), iface.x11_display.clone()));
            // `--pipelogin` reads "<account> <password>" from stdin.
            spec.stdin = Some(Secret::new(format!(
                "{} {}",
                iface.skype_user,
                password.expose()
            )));
            Ok(spec)
        }
    }
}

fn create_private_dir(dir: &Path) -> Result<(), ClientError> {
    use std::os::unix::fs::DirBuilderExt as _;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| ClientError::Profile {
            path: dir.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iface() -> InterfaceConfig {
        InterfaceConfig::with_defaults(1, "interface1", ":101", "alice")
    }

    fn clients(text: &str) -> ClientsSettings {
        let value: ::config::Value = ::config::Config::builder()
            .add_source(::config::File::from_str(text, ::config::FileFormat::Toml))
            .build()
            .unwrap()
            .cache;
        value.try_deserialize().unwrap()
    }

    #[test]
    fn the_emulated_client_gets_display_user_and_network() {
        let c = clients("sim_binary = \"/opt/sim\"\nnetwork_listen = \"127.0.0.1:9999\"");
        let spec = client_spec(&c, &iface()).unwrap();
        assert_eq!(
            spec.command_line(),
            "/opt/sim client --display :101 --user alice --network 127.0.0.1:9999"
        );
        assert!(spec.stdin.is_none());
    }

    #[test]
    fn a_real_client_gets_its_profile_and_password_on_stdin() {
        let dir = tempfile::tempdir().unwrap();
        let creds = dir.path().join("creds");
        std::fs::create_dir(&creds).unwrap();
        std::fs::write(creds.join("alice"), "hunter2\n").unwrap();
        let c = clients(&format!(
            "kind = \"skype\"\ncommand = [\"/opt/skype{{display}}\", \"--dbpath={{dbpath}}\", \
             \"--pipelogin\"]\ndbpath_root = {:?}\ncredentials_dir = {:?}",
            dir.path().join("profiles"),
            creds
        ));
        let spec = client_spec(&c, &iface()).unwrap();
        let profile = dir.path().join("profiles/interface1");
        assert_eq!(
            spec.command_line(),
            format!("/opt/skype:101 --dbpath={} --pipelogin", profile.display())
        );
        assert!(profile.is_dir());
        assert_eq!(spec.env, [("DISPLAY".to_string(), ":101".to_string())]);
        assert_eq!(spec.stdin.unwrap().expose(), "alice hunter2");
    }
}
