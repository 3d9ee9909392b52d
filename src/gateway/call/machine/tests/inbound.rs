//! Inbound calls: `originate`, the socket connecting back, `ANSWER`, and every way one ends.

use super::*;

#[test]
fn inbound_call_flow_originates_answers_skype_then_opens_media() {
    let mut m = CallMachine::inbound(setup(Direction::Inbound, false));
    assert_eq!(
        m.step(Input::Start),
        vec![
            Action::Registry(IfaceState::Prering, CallFlow::Ringing),
            Action::Publish,
            Action::Originate,
            Action::Arm(Timer::Originate, T.originate),
        ]
    );
    assert!(m.step(Input::Originated(Ok(()))).is_empty());
    assert_eq!(
        m.step(Input::SocketConnected),
        vec![
            Action::Disarm(Timer::Originate),
            Action::Publish,
            Action::Registry(IfaceState::PreAnswer, CallFlow::Ringing),
            Action::AnswerSkype,
        ]
    );
    assert_eq!(
        m.step(Input::SkypeAnswered(Ok(()))),
        vec![Action::Arm(Timer::Answer, T.answer)]
    );
    assert_eq!(
        m.step(status(CallStatus::InProgress)),
        vec![
            Action::Registry(IfaceState::Up, CallFlow::InProgress),
            Action::Disarm(Timer::Answer),
            Action::OpenMedia,
        ]
    );
    m.step(Input::MediaOpened(Ok(())));
    let end = m.step(status(CallStatus::Finished));
    assert_eq!(hangup_cause(&end), Some("NORMAL_CLEARING"));
    assert!(!end.contains(&Action::RejectSkype));
}

#[test]
fn inbound_endings_before_the_answer() {
    // The caller gives up while FreeSWITCH rings: the originate is cancelled.
    for s in [
        CallStatus::Finished,
        CallStatus::Cancelled,
        CallStatus::Missed,
    ] {
        let mut m = CallMachine::inbound(setup(Direction::Inbound, false));
        let actions = run(&mut m, [Input::Start, status(s.clone())]);
        assert_eq!(
            actions[actions.len() - 4..],
            [
                Action::CancelOriginate,
                Action::RejectSkype,
                Action::CountFailure,
                Action::Ended(Ended::BySkype(SkypeOutcome::Cancelled))
            ],
            "{s}"
        );
    }
    // FreeSWITCH does not answer in time.
    let mut m = CallMachine::inbound(setup(Direction::Inbound, false));
    let actions = run(&mut m, [Input::Start, Input::Timer(Timer::Originate)]);
    assert_eq!(
        ended(&actions),
        Some(Ended::BySkype(SkypeOutcome::RingTimeout))
    );
    assert_eq!(SkypeOutcome::RingTimeout.cause().as_str(), "NO_ANSWER");
    assert!(actions.contains(&Action::CancelOriginate));
    assert!(actions.contains(&Action::RejectSkype));
    // The originate fails: Skype is rejected, nothing to cancel.
    let mut m = CallMachine::inbound(setup(Direction::Inbound, false));
    let actions = run(&mut m, [Input::Start, Input::Originated(Err(()))]);
    assert_eq!(ended(&actions), Some(Ended::BySwitch));
    assert!(!actions.contains(&Action::CancelOriginate));
    assert!(actions.contains(&Action::RejectSkype));
    // The socket connected, then the caller gave up before INPROGRESS.
    let actions = after_answer_sent(Input::SkypeAnswered(Ok(())), status(CallStatus::Finished));
    assert_eq!(hangup_cause(&actions), Some("ORIGINATOR_CANCEL"));
}

#[test]
fn inbound_answer_failures_and_the_answer_timer() {
    for (failure, cause) in [
        (AnswerFailure::ClientGone, "DESTINATION_OUT_OF_ORDER"),
        (AnswerFailure::Refused, "ORIGINATOR_CANCEL"),
    ] {
        let actions = after_answer_sent(Input::SkypeAnswered(Err(failure)), Input::Shutdown);
        assert_eq!(hangup_cause(&actions), Some(cause));
    }
    let actions = after_answer_sent(Input::SkypeAnswered(Ok(())), Input::Timer(Timer::Answer));
    assert_eq!(hangup_cause(&actions), Some("RECOVERY_ON_TIMER_EXPIRE"));
    // Once in progress the answer timer is stale.
    let mut m = talking_inbound();
    assert!(m.step(Input::Timer(Timer::Answer)).is_empty());
}

#[test]
fn inbound_answered_calls_end_with_the_skype_outcome() {
    for (s, cause) in [
        (CallStatus::Finished, "NORMAL_CLEARING"),
        (CallStatus::Busy, "USER_BUSY"),
        (CallStatus::Failed, "NORMAL_TEMPORARY_FAILURE"),
    ] {
        let mut m = talking_inbound();
        let actions = m.step(status(s.clone()));
        assert_eq!(hangup_cause(&actions), Some(cause), "{s}");
    }
    let mut m = talking_inbound();
    let actions = m.step(Input::Skype(SkypeInput::NotOnline));
    assert_eq!(hangup_cause(&actions), Some("NETWORK_OUT_OF_ORDER"));
}

#[test]
fn shutdown_while_an_inbound_call_rings_cancels_the_originate() {
    let mut m = CallMachine::inbound(setup(Direction::Inbound, false));
    let actions = run(&mut m, [Input::Start, Input::Shutdown]);
    assert!(actions.contains(&Action::CancelOriginate));
    assert!(actions.contains(&Action::RejectSkype));
    assert_eq!(ended(&actions), Some(Ended::Shutdown));
    let mut m = talking_inbound();
    let actions = m.step(Input::Shutdown);
    assert_eq!(hangup_cause(&actions), Some("SYSTEM_SHUTDOWN"));
}

#[test]
fn the_outcomes_decided_before_a_call_exists_have_their_causes() {
    // Routing refuses these before a call machine exists; `causes.rs` holds the whole table.
    assert_eq!(
        SkypeOutcome::NoIdleInterface.cause().as_str(),
        "NORMAL_CIRCUIT_CONGESTION"
    );
    assert_eq!(
        SkypeOutcome::InvalidDestination.cause().as_str(),
        "INVALID_NUMBER_FORMAT"
    );
    assert_eq!(Ended::BySwitch.cause().as_str(), "NORMAL_CLEARING");
}

/// An inbound call whose socket connected: the answer's outcome, then `next`; every action.
fn after_answer_sent(answer: Input, next: Input) -> Vec<Action> {
    let mut m = CallMachine::inbound(setup(Direction::Inbound, false));
    run(&mut m, [Input::Start, Input::SocketConnected, answer, next])
}
