//! Outbound calls: `CALL`, progress relayed to the channel, and every way one ends.

use super::*;
use crate::gateway::causes::HangupCause;

#[test]
fn outbound_call_flow_relays_progress_then_answers_and_opens_media() {
    let mut m = CallMachine::outbound(setup(Direction::Outbound, false));
    let start = m.step(Input::Start);
    assert_eq!(
        start,
        vec![
            Action::Registry(IfaceState::Dialing, CallFlow::Unplaced),
            Action::Publish,
            Action::SetVar(ChannelVar::SkypeUser),
            Action::SetVar(ChannelVar::Interface),
            Action::SetVar(ChannelVar::Host),
            Action::PlaceCall,
        ]
    );
    assert!(m.placing());
    let placed = m.step(Input::Placed(Ok(())));
    assert!(placed.contains(&Action::SetVar(ChannelVar::SkypeCallId)));
    assert!(placed.contains(&Action::Arm(Timer::Setup, T.setup)));
    assert_eq!(
        m.step(status(CallStatus::Routing)),
        vec![Action::Registry(IfaceState::Dialing, CallFlow::Routing)]
    );
    assert_eq!(
        m.step(status(CallStatus::Ringing)),
        vec![
            Action::Registry(IfaceState::Ringing, CallFlow::Ringing),
            Action::Disarm(Timer::Setup),
            Action::Arm(Timer::Ring, T.ring),
            Action::RingReady,
        ]
    );
    assert_eq!(
        m.step(status(CallStatus::InProgress)),
        vec![
            Action::Registry(IfaceState::Up, CallFlow::InProgress),
            Action::Disarm(Timer::Setup),
            Action::Disarm(Timer::Ring),
            Action::AnswerChannel,
        ]
    );
    assert_eq!(
        m.step(Input::ChannelAnswered(Ok(()))),
        vec![Action::OpenMedia]
    );
    assert_eq!(m.step(Input::MediaOpened(Ok(()))), vec![]);
    assert!(m.answered());
    let end = m.step(status(CallStatus::Finished));
    assert_eq!(
        end,
        vec![
            Action::CloseMedia,
            Action::HangupChannel(HangupCause::NormalClearing),
            Action::Ended(Ended::BySkype(SkypeOutcome::Finished)),
        ],
        "a finished Skype call is not hung up again and counts no failure"
    );
    assert!(m.is_over());
    assert!(m.step(status(CallStatus::Finished)).is_empty());
}

#[test]
fn early_media_pre_answers_and_the_answer_reuses_the_open_media() {
    let mut m = CallMachine::outbound(setup(Direction::Outbound, false));
    run(&mut m, [Input::Start, Input::Placed(Ok(()))]);
    let early = m.step(status(CallStatus::EarlyMedia));
    assert!(early.contains(&Action::PreAnswer));
    assert!(early.contains(&Action::OpenMedia));
    assert!(early.contains(&Action::Arm(Timer::Ring, T.ring)));
    m.step(Input::MediaOpened(Ok(())));
    let answer = run(
        &mut m,
        [
            status(CallStatus::InProgress),
            Input::ChannelAnswered(Ok(())),
        ],
    );
    assert!(!answer.contains(&Action::OpenMedia), "{answer:?}");
}

#[test]
fn early_media_failure_is_not_fatal_and_the_answer_tries_again() {
    let mut m = CallMachine::outbound(setup(Direction::Outbound, false));
    run(
        &mut m,
        [
            Input::Start,
            Input::Placed(Ok(())),
            status(CallStatus::EarlyMedia),
            Input::MediaOpened(Err(())),
        ],
    );
    assert!(!m.is_over());
    let answer = run(
        &mut m,
        [
            status(CallStatus::InProgress),
            Input::ChannelAnswered(Ok(())),
        ],
    );
    assert_eq!(answer.last(), Some(&Action::OpenMedia));
}

#[test]
fn every_skype_ending_of_an_outbound_call_maps_to_its_cause() {
    let reason = |n| Input::Skype(SkypeInput::FailureReason(n));
    let table: Vec<(Vec<Input>, &str)> = vec![
        (vec![status(CallStatus::Busy)], "USER_BUSY"),
        (vec![status(CallStatus::WaitingRedialCommand)], "USER_BUSY"),
        (vec![status(CallStatus::Refused)], "CALL_REJECTED"),
        (vec![status(CallStatus::Missed)], "NO_ANSWER"),
        (vec![status(CallStatus::Cancelled)], "ORIGINATOR_CANCEL"),
        (vec![status(CallStatus::Failed)], "NORMAL_TEMPORARY_FAILURE"),
        (
            vec![reason(2), status(CallStatus::Failed)],
            "UNALLOCATED_NUMBER",
        ),
        (
            vec![reason(3), status(CallStatus::Failed)],
            "SUBSCRIBER_ABSENT",
        ),
        (vec![reason(9), status(CallStatus::Failed)], "CALL_REJECTED"),
        (
            vec![reason(10), status(CallStatus::Failed)],
            "CALL_REJECTED",
        ),
        (
            vec![reason(11), status(CallStatus::Failed)],
            "CALL_REJECTED",
        ),
        (
            vec![reason(6), status(CallStatus::Failed)],
            "NORMAL_TEMPORARY_FAILURE",
        ),
        (
            vec![Input::Skype(SkypeInput::NotOnline)],
            "NETWORK_OUT_OF_ORDER",
        ),
        (
            vec![Input::Skype(SkypeInput::ClientGone)],
            "DESTINATION_OUT_OF_ORDER",
        ),
        (vec![Input::Timer(Timer::Ring)], "NO_ANSWER"),
        (vec![Input::Shutdown], "SYSTEM_SHUTDOWN"),
    ];
    for (inputs, cause) in table {
        let (mut m, _) = ringing_outbound(false);
        let actions = run(&mut m, inputs.clone());
        assert_eq!(hangup_cause(&actions), Some(cause), "{inputs:?}");
        assert!(actions.contains(&Action::RejectSkype), "{inputs:?}");
        assert!(actions.contains(&Action::CountFailure), "{inputs:?}");
        assert!(m.is_over(), "{inputs:?}");
    }
}

#[test]
fn a_call_skype_never_placed_ends_with_the_cause_of_the_refusal() {
    let table = [
        (PlaceFailure::UnknownIdentity, "UNALLOCATED_NUMBER"),
        (PlaceFailure::NotOnline, "NETWORK_OUT_OF_ORDER"),
        (PlaceFailure::ClientGone, "DESTINATION_OUT_OF_ORDER"),
        (PlaceFailure::Other, "NORMAL_TEMPORARY_FAILURE"),
    ];
    for (failure, cause) in table {
        let mut m = CallMachine::outbound(setup(Direction::Outbound, false));
        let actions = run(&mut m, [Input::Start, Input::Placed(Err(failure))]);
        assert_eq!(hangup_cause(&actions), Some(cause), "{failure:?}");
        assert!(
            !actions.contains(&Action::RejectSkype),
            "there is no Skype call to hang up: {failure:?}"
        );
    }
}

#[test]
fn a_hangup_while_the_call_is_placed_ends_it_at_once() {
    let mut m = CallMachine::outbound(setup(Direction::Outbound, false));
    m.step(Input::Start);
    assert!(m.placing());
    let actions = m.step(Input::Channel(ChannelInput::HungUp));
    assert_eq!(ended(&actions), Some(Ended::BySwitch));
    assert_eq!(hangup_cause(&actions), None, "the channel is gone already");
    assert!(
        !actions.contains(&Action::RejectSkype),
        "nothing placed yet"
    );
}

#[test]
fn a_skypeout_failure_without_credit_is_barred_and_with_credit_a_temporary_failure() {
    for (balance, cause) in [
        (Some(0), "OUTGOING_CALL_BARRED"),
        (Some(-5), "OUTGOING_CALL_BARRED"),
        (Some(250), "NORMAL_TEMPORARY_FAILURE"),
        (None, "NORMAL_TEMPORARY_FAILURE"),
    ] {
        let (mut m, _) = ringing_outbound(true);
        let ask = m.step(status(CallStatus::Failed));
        assert_eq!(ask, vec![Action::AskBalance]);
        let actions = m.step(Input::Balance(balance));
        assert_eq!(hangup_cause(&actions), Some(cause), "{balance:?}");
    }
    // A specific reason, or a Skype-to-Skype call, needs no balance.
    let (mut m, _) = ringing_outbound(true);
    let actions = run(
        &mut m,
        [
            Input::Skype(SkypeInput::FailureReason(3)),
            status(CallStatus::Failed),
        ],
    );
    assert_eq!(hangup_cause(&actions), Some("SUBSCRIBER_ABSENT"));
    let (mut m, _) = ringing_outbound(false);
    let actions = m.step(status(CallStatus::Failed));
    assert!(!actions.contains(&Action::AskBalance));
}

#[test]
fn the_setup_timer_fires_only_before_ringing() {
    let mut m = CallMachine::outbound(setup(Direction::Outbound, false));
    run(&mut m, [Input::Start, Input::Placed(Ok(()))]);
    let actions = m.step(Input::Timer(Timer::Setup));
    assert_eq!(hangup_cause(&actions), Some("RECOVERY_ON_TIMER_EXPIRE"));

    let (mut m, _) = ringing_outbound(false);
    assert!(m.step(Input::Timer(Timer::Setup)).is_empty(), "stale");
    assert!(!m.is_over());
}

#[test]
fn the_ring_timer_is_armed_once_and_answering_makes_it_stale() {
    let (mut m, first) = ringing_outbound(false);
    assert_eq!(
        first
            .iter()
            .filter(|a| matches!(a, Action::Arm(Timer::Ring, _)))
            .count(),
        1
    );
    let again = m.step(status(CallStatus::Ringing));
    assert!(!again.iter().any(|a| matches!(a, Action::Arm(..))));
    run(
        &mut m,
        [
            status(CallStatus::InProgress),
            Input::ChannelAnswered(Ok(())),
        ],
    );
    assert!(m.step(Input::Timer(Timer::Ring)).is_empty());
    assert!(!m.is_over());
}

#[test]
fn a_channel_that_cannot_be_answered_ends_the_call_as_the_switch_s() {
    let (mut m, _) = ringing_outbound(false);
    let actions = run(
        &mut m,
        [
            status(CallStatus::InProgress),
            Input::ChannelAnswered(Err(())),
        ],
    );
    assert_eq!(ended(&actions), Some(Ended::BySwitch));
    assert!(actions.contains(&Action::RejectSkype));
}

#[test]
fn media_that_fails_after_the_answer_waits_for_skype_s_own_ending() {
    let answered_without_media = || {
        let (mut m, _) = ringing_outbound(false);
        let grace = run(
            &mut m,
            [
                status(CallStatus::InProgress),
                Input::ChannelAnswered(Ok(())),
                Input::MediaOpened(Err(())),
            ],
        );
        assert_eq!(
            grace.last(),
            Some(&Action::Arm(Timer::EndingGrace, ENDING_GRACE))
        );
        m
    };
    // Skype reports the end within the grace: a normal hangup.
    let mut m = answered_without_media();
    let actions = m.step(status(CallStatus::Finished));
    assert_eq!(hangup_cause(&actions), Some("NORMAL_CLEARING"));
    // Nothing within the grace: the client is taken to be gone.
    let mut m = answered_without_media();
    let actions = m.step(Input::Timer(Timer::EndingGrace));
    assert_eq!(hangup_cause(&actions), Some("DESTINATION_OUT_OF_ORDER"));
}

#[test]
fn a_media_path_that_stops_waits_for_the_hangup_that_explains_it() {
    // Nothing follows: the client is gone.
    let mut m = talking_outbound();
    let wait = m.step(Input::Media(MediaInput::Stopped));
    assert_eq!(wait, vec![Action::Arm(Timer::EndingGrace, ENDING_GRACE)]);
    let actions = m.step(Input::Timer(Timer::EndingGrace));
    assert_eq!(hangup_cause(&actions), Some("DESTINATION_OUT_OF_ORDER"));
    assert!(
        actions.contains(&Action::CloseMedia),
        "its ports are released"
    );
    assert!(!actions.contains(&Action::CountFailure), "it was answered");
    // FreeSWITCH closed the stream because its channel hung up: the switch ended it.
    let mut m = talking_outbound();
    m.step(Input::Media(MediaInput::Stopped));
    let actions = m.step(Input::Channel(ChannelInput::HungUp));
    assert_eq!(ended(&actions), Some(Ended::BySwitch));
    assert!(actions.contains(&Action::CloseMedia));
    // The Skype party hung up: its audio closed just before STATUS FINISHED.
    let mut m = talking_outbound();
    m.step(Input::Media(MediaInput::Stopped));
    let actions = m.step(status(CallStatus::Finished));
    assert_eq!(hangup_cause(&actions), Some("NORMAL_CLEARING"));
}
