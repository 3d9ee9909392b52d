//! `skypopen run`: wires every part of the sidecar together and stops them on SIGTERM.

use crate::config::Settings;
use crate::shutdown::{self, CancellationToken};
use tracing::{info, warn};

pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let _log_bus = crate::telemetry::init(&settings.log);
    let stop = CancellationToken::new();
    info!(
        config = %settings.path.display(),
        interfaces = settings.interfaces.len(),
        "skypopen starting"
    );
    for iface in &settings.interfaces {
        info!(
            interface = %iface.name,
            id = iface.id,
            display = %iface.x11_display,
            skype_user = %iface.skype_user,
            "interface configured"
        );
    }
    match shutdown::signalled().await {
        Ok(signal) => info!(signal, "stopping"),
        Err(err) => warn!(error = %err, "cannot watch signals; stopping"),
    }
    stop.cancel();
    Ok(())
}
