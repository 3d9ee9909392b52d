//! How a Skype call's outcome becomes a FreeSWITCH hangup cause.
//!
//! The original module hung up every Skype-side ending with NORMAL_CLEARING. Callers and
//! dialplans need to tell "busy" from "no answer" from "no such user", so each outcome maps to
//! the closest Q.850 cause:
//!
//! | Skype outcome                                   | FreeSWITCH cause            |
//! |-------------------------------------------------|-----------------------------|
//! | `STATUS FINISHED` after answer                   | NORMAL_CLEARING             |
//! | `STATUS BUSY`, `WAITING_REDIAL_COMMAND`          | USER_BUSY                   |
//! | `STATUS REFUSED`                                 | CALL_REJECTED               |
//! | `STATUS MISSED`, our ringing timeout             | NO_ANSWER                   |
//! | `STATUS CANCELLED`                               | ORIGINATOR_CANCEL           |
//! | `ERROR 92 CALL: Unrecognised identity`           | UNALLOCATED_NUMBER          |
//! | `STATUS FAILED`, FAILUREREASON 2 (no such user)  | UNALLOCATED_NUMBER          |
//! | `STATUS FAILED`, FAILUREREASON 3 (offline)       | SUBSCRIBER_ABSENT           |
//! | `STATUS FAILED`, FAILUREREASON 9/10/11 (blocked, not authorised) | CALL_REJECTED |
//! | SkypeOut `STATUS FAILED` (reason 1 or none) with a PSTN balance of 0 or less | OUTGOING_CALL_BARRED |
//! | `STATUS FAILED`, any other reason                 | NORMAL_TEMPORARY_FAILURE    |
//! | `ERROR 36 Not online`, CONNSTATUS OFFLINE         | NETWORK_OUT_OF_ORDER        |
//! | no idle interface                                 | NORMAL_CIRCUIT_CONGESTION   |
//! | client gone mid-call (X window lost, audio lost)  | DESTINATION_OUT_OF_ORDER    |
//! | setup timeout before ringing                      | RECOVERY_ON_TIMER_EXPIRE    |
//! | invalid destination (spaces, commas, empty)       | INVALID_NUMBER_FORMAT       |

pub use crate::switch::HangupCause;

/// FAILUREREASON 1, "miscellaneous error". The Skype API has no code for a SkypeOut call
/// without credit (13 is "failure to call a commercial contact"); the client reports such a
/// call with this one, so the gateway asks for the balance to tell it apart.
pub const FAILURE_MISC: u32 = 1;

/// Why a Skype call ended, as far as the gateway needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkypeOutcome {
    Finished,
    Busy,
    Refused,
    Missed,
    Cancelled,
    UnknownIdentity,
    Failed {
        reason: Option<u32>,
    },
    /// A SkypeOut call refused for want of credit.
    NoCredit,
    NotOnline,
    NoIdleInterface,
    ClientGone,
    SetupTimeout,
    RingTimeout,
    InvalidDestination,
}

impl SkypeOutcome {
    pub fn cause(self) -> HangupCause {
        match self {
            SkypeOutcome::Finished => HangupCause::NormalClearing,
            SkypeOutcome::Busy => HangupCause::UserBusy,
            SkypeOutcome::Refused => HangupCause::CallRejected,
            SkypeOutcome::Missed | SkypeOutcome::RingTimeout => HangupCause::NoAnswer,
            SkypeOutcome::Cancelled => HangupCause::OriginatorCancel,
            SkypeOutcome::UnknownIdentity => HangupCause::UnallocatedNumber,
            SkypeOutcome::Failed { reason } => match reason {
                Some(2) => HangupCause::UnallocatedNumber,
                Some(3) => HangupCause::SubscriberAbsent,
                Some(9..=11) => HangupCause::CallRejected,
                _ => HangupCause::NormalTemporaryFailure,
            },
            SkypeOutcome::NoCredit => HangupCause::OutgoingCallBarred,
            SkypeOutcome::NotOnline => HangupCause::NetworkOutOfOrder,
            SkypeOutcome::NoIdleInterface => HangupCause::NormalCircuitCongestion,
            SkypeOutcome::ClientGone => HangupCause::DestinationOutOfOrder,
            SkypeOutcome::SetupTimeout => HangupCause::RecoveryOnTimerExpire,
            SkypeOutcome::InvalidDestination => HangupCause::InvalidNumberFormat,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_table_holds() {
        let table = [
            (SkypeOutcome::Finished, "NORMAL_CLEARING"),
            (SkypeOutcome::Busy, "USER_BUSY"),
            (SkypeOutcome::Refused, "CALL_REJECTED"),
            (SkypeOutcome::Missed, "NO_ANSWER"),
            (SkypeOutcome::RingTimeout, "NO_ANSWER"),
            (SkypeOutcome::UnknownIdentity, "UNALLOCATED_NUMBER"),
            (SkypeOutcome::NoCredit, "OUTGOING_CALL_BARRED"),
            (
                SkypeOutcome::Failed { reason: Some(1) },
                "NORMAL_TEMPORARY_FAILURE",
            ),
            (
                SkypeOutcome::Failed { reason: None },
                "NORMAL_TEMPORARY_FAILURE",
            ),
            (SkypeOutcome::NoIdleInterface, "NORMAL_CIRCUIT_CONGESTION"),
            (SkypeOutcome::ClientGone, "DESTINATION_OUT_OF_ORDER"),
            (SkypeOutcome::InvalidDestination, "INVALID_NUMBER_FORMAT"),
        ];
        for (outcome, cause) in table {
            assert_eq!(outcome.cause().as_str(), cause, "{outcome:?}");
        }
    }
}
