//! The call machine through the spec's call flows and the cause table, with no sockets:
//! set-up per direction in `outbound.rs` and `inbound.rs`, the shared part of a call here.

use super::*;

mod inbound;
mod outbound;

const T: Timeouts = Timeouts {
    setup: Duration::from_secs(30),
    ring: Duration::from_secs(60),
    answer: Duration::from_secs(10),
    originate: Duration::from_secs(45),
};

fn setup(direction: Direction, pstn: bool) -> Setup {
    Setup {
        direction,
        timeouts: T,
        pstn,
    }
}

fn status(s: CallStatus) -> Input {
    Input::Skype(SkypeInput::Status(s))
}

/// Runs the inputs and returns every action, in order.
fn run(machine: &mut CallMachine, inputs: impl IntoIterator<Item = Input>) -> Vec<Action> {
    inputs.into_iter().flat_map(|i| machine.step(i)).collect()
}

fn ended(actions: &[Action]) -> Option<Ended> {
    match actions.last() {
        Some(Action::Ended(e)) => Some(*e),
        _ => None,
    }
}

fn hangup_cause(actions: &[Action]) -> Option<&'static str> {
    actions.iter().find_map(|a| match a {
        Action::HangupChannel(cause) => Some(cause.as_str()),
        _ => None,
    })
}

/// An outbound call placed and ringing.
fn ringing_outbound(pstn: bool) -> (CallMachine, Vec<Action>) {
    let mut m = CallMachine::outbound(setup(Direction::Outbound, pstn));
    let actions = run(
        &mut m,
        [
            Input::Start,
            Input::Placed(Ok(())),
            status(CallStatus::Ringing),
        ],
    );
    (m, actions)
}

/// An outbound call answered with its media open.
fn talking_outbound() -> CallMachine {
    let (mut m, _) = ringing_outbound(false);
    run(
        &mut m,
        [
            status(CallStatus::InProgress),
            Input::ChannelAnswered(Ok(())),
            Input::MediaOpened(Ok(())),
        ],
    );
    m
}

/// An inbound call whose socket connected and whose Skype call is in progress.
fn talking_inbound() -> CallMachine {
    let mut m = CallMachine::inbound(setup(Direction::Inbound, false));
    run(
        &mut m,
        [
            Input::Start,
            Input::Originated(Ok(())),
            Input::SocketConnected,
            Input::SkypeAnswered(Ok(())),
            status(CallStatus::InProgress),
            Input::MediaOpened(Ok(())),
        ],
    );
    m
}

#[test]
fn hold_and_resume_keep_the_call_and_its_media() {
    for mut m in [talking_outbound(), talking_inbound()] {
        for hold in [
            CallStatus::RemoteHold,
            CallStatus::LocalHold,
            CallStatus::OnHold,
        ] {
            assert_eq!(
                m.step(status(hold)),
                vec![Action::Registry(IfaceState::Up, CallFlow::RemoteHold)]
            );
            assert_eq!(
                m.step(status(CallStatus::InProgress)),
                vec![Action::Registry(IfaceState::Up, CallFlow::InProgress)]
            );
        }
        assert!(!m.is_over());
    }
}

#[test]
fn the_switch_hanging_up_a_live_call_hangs_up_skype_and_closes_media() {
    for mut m in [talking_outbound(), talking_inbound()] {
        let actions = m.step(Input::Channel(ChannelInput::Closed));
        assert_eq!(
            actions,
            vec![
                Action::CloseMedia,
                Action::RejectSkype,
                Action::Ended(Ended::BySwitch)
            ]
        );
    }
}

#[test]
fn dtmf_crosses_both_ways_and_the_bridged_rule_holds() {
    let mut m = talking_outbound();
    assert_eq!(
        m.step(Input::Channel(ChannelInput::Dtmf('5'))),
        vec![Action::DtmfToSkype('5')]
    );
    let dtmf = |digits: &str, bridged, also_when_bridged| {
        Input::Skype(SkypeInput::Dtmf {
            digits: digits.into(),
            bridged,
            also_when_bridged,
        })
    };
    let skype_dtmf = |digits: &str, bridged| dtmf(digits, bridged, false);
    assert_eq!(
        m.step(skype_dtmf("1x#", false)),
        vec![Action::DtmfToSwitch("1#".into())]
    );
    assert!(m.step(skype_dtmf("1", true)).is_empty());
    assert!(m.step(skype_dtmf("xyz", false)).is_empty());
    assert_eq!(
        m.step(Input::Media(MediaInput::InbandDigit('7'))),
        vec![Action::DtmfToSwitch("7".into())]
    );
    assert_eq!(
        m.step(dtmf("9", true, true)),
        vec![Action::DtmfToSwitch("9".into())]
    );
}
