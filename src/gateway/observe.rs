//! What the gateway shows a monitor: the scrape-time metrics only it knows (interface states,
//! live calls, the switch link) and the health verdict.

use super::registry::Direction;
use super::{Gateway, Shared};
use crate::switch::inbound::LinkState;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use std::sync::{Arc, Weak};

/// Reads the gateway at every scrape. Holds it weakly: the gateway owns the metrics.
#[derive(Debug)]
pub struct GatewayCollector(Weak<Shared>);

impl GatewayCollector {
    pub fn new(gw: &Gateway) -> GatewayCollector {
        GatewayCollector(Arc::downgrade(&gw.0))
    }
}

impl Collector for GatewayCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(gw) = self.0.upgrade() else {
            return Ok(());
        };
        let slots = gw.registry.snapshot();
        let mut states = encoder.encode_descriptor(
            "interface_state",
            "1 for the state each interface is in (IDLE, DOWN, UP, RINGING ...)",
            None,
            MetricType::Gauge,
        )?;
        for slot in &slots {
            let labels = [
                ("interface", slot.name.as_str()),
                ("state", slot.state.label()),
            ];
            ConstGauge::new(1i64).encode(states.encode_family(&labels)?)?;
        }
        let usable = encoder.encode_descriptor(
            "interfaces_usable",
            "Interfaces whose client is logged in and online",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(usable_count(&slots) as i64).encode(usable)?;
        let mut active = encoder.encode_descriptor(
            "calls_active",
            "Calls in progress, by direction",
            None,
            MetricType::Gauge,
        )?;
        for direction in [Direction::Inbound, Direction::Outbound] {
            let n = gw
                .live_calls
                .iter()
                .filter(|c| c.direction() == direction)
                .count();
            let labels = [("direction", direction.label())];
            ConstGauge::new(n as i64).encode(active.encode_family(&labels)?)?;
        }
        let link = encoder.encode_descriptor(
            "esl_up",
            "1 while the inbound Event Socket connection to FreeSWITCH is up",
            None,
            MetricType::Gauge,
        )?;
        let up = *gw.switch.state().borrow() == LinkState::Up;
        ConstGauge::new(i64::from(up)).encode(link)?;
        Ok(())
    }
}

/// Interfaces that can carry a call.
pub(super) fn usable_count(slots: &[super::registry::SlotView]) -> usize {
    slots.iter().filter(|s| s.is_usable()).count()
}

/// Healthy when the switch link is up and at least one interface can carry a call.
pub fn health(gw: &Gateway) -> Result<String, String> {
    let slots = gw.registry.snapshot();
    let usable = usable_count(&slots);
    let link = gw.switch.state().borrow().clone();
    let mut why = Vec::new();
    if link != LinkState::Up {
        why.push(format!(
            "FreeSWITCH event socket at {} is not connected ({link})",
            gw.switch.addr()
        ));
    }
    if usable == 0 {
        why.push(format!("none of {} interface(s) is usable", slots.len()));
    }
    if why.is_empty() {
        Ok(format!(
            "FreeSWITCH connected, {usable} of {} interface(s) usable, {} call(s) up",
            slots.len(),
            gw.live_calls.len()
        ))
    } else {
        Err(why.join("; "))
    }
}
