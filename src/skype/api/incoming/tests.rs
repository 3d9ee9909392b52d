use super::*;
use proptest::prelude::*;

fn parse(text: &str) -> Notification {
    let incoming = Incoming::parse(text);
    assert_eq!(incoming.tag, None, "{text}");
    incoming.notification
}

fn call(id: u64, event: CallEvent) -> Notification {
    Notification::Call {
        id: CallId(id),
        event,
    }
}

fn message(id: u64, event: ChatMessageEvent) -> Notification {
    Notification::ChatMessage {
        id: ChatMessageId(id),
        event,
    }
}

#[test]
fn the_contact_list_reads_as_users() {
    assert_eq!(
        parse("USERS alice, bob, echo123"),
        Notification::Users(vec!["alice".into(), "bob".into(), "echo123".into()])
    );
    assert_eq!(parse("USERS"), Notification::Users(vec![]));
}

#[test]
fn handshake_messages() {
    assert_eq!(parse("OK"), Notification::Ok);
    assert_eq!(parse("PROTOCOL 7"), Notification::Protocol(7));
    assert_eq!(
        parse("CONNSTATUS ONLINE"),
        Notification::ConnStatus(ConnStatus::Online)
    );
    assert_eq!(
        parse("CURRENTUSERHANDLE user1"),
        Notification::CurrentUserHandle("user1".into())
    );
    assert_eq!(
        parse("USERSTATUS INVISIBLE"),
        Notification::UserStatus("INVISIBLE".into())
    );
    assert_eq!(parse("SILENT_MODE OFF"), Notification::SilentMode(false));
    assert_eq!(parse("silent_mode on"), Notification::SilentMode(true));
    assert_eq!(parse("AUTOAWAY OFF"), Notification::AutoAway(false));
    assert_eq!(
        parse("WINDOWSTATE HIDDEN"),
        Notification::WindowState("HIDDEN".into())
    );
    assert_eq!(parse("PONG"), Notification::Pong);
    assert!(parse("ERROR 68").is_not_authorized());
}

#[test]
fn tags_are_split_off() {
    let reply = Incoming::parse("#output ALTER CALL 12 SET_OUTPUT PORT=\"32770\"");
    assert_eq!(reply.tag.as_deref(), Some("output"));
    assert_eq!(
        reply.notification,
        Notification::Alter {
            object: "CALL".into(),
            id: "12".into(),
            action: "SET_OUTPUT PORT=\"32770\"".into(),
        }
    );
    let reply = Incoming::parse("#7 CALL 12 STATUS UNPLACED");
    assert_eq!(reply.tag.as_deref(), Some("7"));
    assert_eq!(
        reply.notification,
        call(12, CallEvent::Status(CallStatus::Unplaced))
    );
    assert_eq!(
        Incoming::parse("#ciapalino PONG"),
        Incoming {
            tag: Some("ciapalino".into()),
            notification: Notification::Pong
        }
    );
    let bare = Incoming::parse("#5");
    assert_eq!(bare.tag.as_deref(), Some("5"));
    assert_eq!(bare.notification, Notification::Unknown(String::new()));
}

#[test]
fn call_notifications() {
    for (wire, status) in [
        ("UNPLACED", CallStatus::Unplaced),
        ("ROUTING", CallStatus::Routing),
        ("EARLYMEDIA", CallStatus::EarlyMedia),
        ("RINGING", CallStatus::Ringing),
        ("INPROGRESS", CallStatus::InProgress),
        ("FINISHED", CallStatus::Finished),
        ("MISSED", CallStatus::Missed),
        ("BUSY", CallStatus::Busy),
        ("REFUSED", CallStatus::Refused),
        ("FAILED", CallStatus::Failed),
        ("CANCELLED", CallStatus::Cancelled),
        ("WAITING_REDIAL_COMMAND", CallStatus::WaitingRedialCommand),
        ("REMOTEHOLD", CallStatus::RemoteHold),
        ("LOCALHOLD", CallStatus::LocalHold),
        ("ONHOLD", CallStatus::OnHold),
        ("TRANSFERRING", CallStatus::Transferring),
        ("TRANSFERRED", CallStatus::Transferred),
        ("VM_PLAYING_GREETING", CallStatus::VmPlayingGreeting),
        ("VM_RECORDING", CallStatus::VmRecording),
    ] {
        assert_eq!(
            parse(&format!("CALL 12 STATUS {wire}")),
            call(12, CallEvent::Status(status.clone()))
        );
        assert_eq!(
            parse(&format!("call 12 status {}", wire.to_lowercase())),
            call(12, CallEvent::Status(status))
        );
    }
    let odd = parse("CALL 3 STATUS VM_SOMETHING_NEW");
    assert_eq!(
        odd,
        call(
            3,
            CallEvent::Status(CallStatus::Other("VM_SOMETHING_NEW".into()))
        )
    );
    if let Notification::Call {
        event: CallEvent::Status(status),
        ..
    } = odd
    {
        assert!(status.is_voicemail());
        assert!(!status.is_terminal());
    }
    assert!(CallStatus::Busy.is_terminal());

    assert_eq!(
        parse("CALL 12 PARTNER_HANDLE echo123"),
        call(12, CallEvent::PartnerHandle("echo123".into()))
    );
    assert_eq!(
        parse("CALL 12 PARTNER_DISPNAME Echo  Sound Test Service"),
        call(
            12,
            CallEvent::PartnerDispname("Echo  Sound Test Service".into())
        )
    );
    assert_eq!(
        parse("CALL 12 DTMF 5"),
        call(12, CallEvent::Dtmf("5".into()))
    );
    assert_eq!(
        parse("CALL 12 FAILUREREASON 1"),
        call(12, CallEvent::FailureReason(1))
    );
    assert_eq!(
        parse("CALL 12 DURATION 3"),
        call(12, CallEvent::Duration(3))
    );
    assert_eq!(
        parse("CALL 12 VM_DURATION 0"),
        call(12, CallEvent::VmDuration(0))
    );
    assert_eq!(parse("CALL 12 CONF_ID 0"), call(12, CallEvent::ConfId(0)));
    assert_eq!(
        parse("CALL 12 TYPE INCOMING_P2P"),
        call(12, CallEvent::Type(CallType::IncomingP2p))
    );
    assert!(CallType::parse("incoming_pstn").is_incoming());
    assert_eq!(
        parse("CALL 12 VAA_INPUT_STATUS TRUE"),
        call(12, CallEvent::VaaInputStatus(true))
    );
    assert_eq!(
        parse("CALL 12 RATE_CURRENCY EUR"),
        call(
            12,
            CallEvent::Property {
                name: "RATE_CURRENCY".into(),
                value: "EUR".into()
            }
        )
    );
    assert_eq!(
        parse("CALL 12 DURATION soon"),
        call(
            12,
            CallEvent::Property {
                name: "DURATION".into(),
                value: "soon".into()
            }
        )
    );
    assert_eq!(
        parse("ALTER CALL 12 ANSWER"),
        Notification::Alter {
            object: "CALL".into(),
            id: "12".into(),
            action: "ANSWER".into()
        }
    );
}

#[test]
fn chat_notifications() {
    assert_eq!(
        parse("CHAT #user2/$user1;8a1b STATUS DIALOG"),
        Notification::Chat {
            name: "#user2/$user1;8a1b".into(),
            event: ChatEvent::Status(ChatStatus::Dialog)
        }
    );
    assert_eq!(
        parse("CHAT #user2/$user1;8a1b DIALOG_PARTNER user2"),
        Notification::Chat {
            name: "#user2/$user1;8a1b".into(),
            event: ChatEvent::DialogPartner("user2".into())
        }
    );
    assert_eq!(
        parse("CHATMESSAGE 40 STATUS RECEIVED"),
        message(40, ChatMessageEvent::Status(ChatMessageStatus::Received))
    );
    assert_eq!(
        parse("CHATMESSAGE 40 TYPE SAID"),
        message(40, ChatMessageEvent::Type(ChatMessageType::Said))
    );
    assert_eq!(
        parse("CHATMESSAGE 40 CHATNAME #user2/$user1;8a1b"),
        message(40, ChatMessageEvent::ChatName("#user2/$user1;8a1b".into()))
    );
    assert_eq!(
        parse("CHATMESSAGE 40 FROM_HANDLE user2"),
        message(40, ChatMessageEvent::FromHandle("user2".into()))
    );
    assert_eq!(
        parse("CHATMESSAGE 40 FROM_DISPNAME Zoë  van der Berg"),
        message(
            40,
            ChatMessageEvent::FromDispname("Zoë  van der Berg".into())
        )
    );
    let long_body = format!("ciao  😀 {}", "x".repeat(2000));
    assert_eq!(
        parse(&format!("CHATMESSAGE 40 BODY {long_body}")),
        message(40, ChatMessageEvent::Body(long_body))
    );
    assert_eq!(
        parse("CHATMESSAGE 40 BODY "),
        message(40, ChatMessageEvent::Body(String::new()))
    );
    assert_eq!(
        parse("CHATMESSAGE 40 TIMESTAMP 1700000000"),
        message(40, ChatMessageEvent::Timestamp(1_700_000_000))
    );
    assert_eq!(
        parse("CHATMESSAGES 34, 35, 36"),
        Notification::ChatMessages(vec![
            ChatMessageId(34),
            ChatMessageId(35),
            ChatMessageId(36)
        ])
    );
    assert_eq!(parse("CHATMESSAGES "), Notification::ChatMessages(vec![]));
    assert_eq!(parse("CHATMESSAGES"), Notification::ChatMessages(vec![]));
    assert!(matches!(
        parse("CHATMESSAGES 1, x"),
        Notification::Unknown(_)
    ));
}

#[test]
fn other_objects() {
    assert_eq!(
        parse("USER user9 RECEIVEDAUTHREQUEST Hi, please add me"),
        Notification::AuthRequest {
            handle: "user9".into(),
            text: "Hi, please add me".into()
        }
    );
    assert_eq!(
        parse("USER user9 ISAUTHORIZED TRUE"),
        Notification::User {
            handle: "user9".into(),
            property: "ISAUTHORIZED".into(),
            value: "TRUE".into()
        }
    );
    assert_eq!(
        parse("MESSAGE 5 STATUS RECEIVED"),
        Notification::Message {
            id: 5,
            property: "STATUS".into(),
            value: "RECEIVED".into()
        }
    );
    assert_eq!(
        parse("VOICEMAIL 9 STATUS PLAYING"),
        Notification::Voicemail {
            id: 9,
            property: "STATUS".into(),
            value: "PLAYING".into()
        }
    );
    let balance = parse("PROFILE PSTN_BALANCE 1234");
    assert_eq!(balance.pstn_balance(), Some(1234));
    let currency = parse("PROFILE PSTN_BALANCE_CURRENCY EUR");
    assert_eq!(currency.pstn_balance_currency(), Some("EUR"));
    assert_eq!(currency.pstn_balance(), None);
    assert_eq!(
        parse("ERROR 92 CALL: Unrecognised identity"),
        Notification::Error {
            code: 92,
            text: "CALL: Unrecognised identity".into()
        }
    );
}

#[test]
fn garbage_becomes_unknown() {
    for text in [
        "",
        " ",
        "HELLO WORLD",
        "CALL",
        "CALL x STATUS RINGING",
        "CALL 12",
        "CALL -1 STATUS RINGING",
        "CHATMESSAGE abc BODY x",
        "ERROR",
        "ERROR abc",
        "PROTOCOL seven",
        "OK then",
        "SILENT_MODE MAYBE",
        "CURRENTUSERHANDLE",
        "ALTER CALL",
        "\u{fffd}\u{0}",
    ] {
        assert_eq!(parse(text), Notification::Unknown(text.into()), "{text:?}");
    }
}

#[test]
fn state_bearing_replies() {
    assert!(parse("CALL 1 STATUS UNPLACED").carries_state());
    assert!(parse("CHATMESSAGE 1 STATUS SENDING").carries_state());
    assert!(!parse("CALL 1 PARTNER_HANDLE x").carries_state());
    assert!(!parse("CHATMESSAGE 1 BODY x").carries_state());
    assert!(!parse("OK").carries_state());
}

fn text_value() -> impl Strategy<Value = String> {
    // Free text as clients send it: anything but NUL, spaces and UTF-8 included.
    "[^\u{0}]{0,40}"
}

fn token() -> impl Strategy<Value = String> {
    "[A-Za-z0-9#$;/._:-]{1,20}"
}

fn known_notification() -> impl Strategy<Value = Notification> {
    let statuses = prop_oneof![
        Just(CallStatus::Unplaced),
        Just(CallStatus::Ringing),
        Just(CallStatus::InProgress),
        Just(CallStatus::VmFailed),
        Just(CallStatus::Other("SOMETHING_NEW".into())),
    ];
    prop_oneof![
        (any::<u64>(), statuses).prop_map(|(id, s)| call(id, CallEvent::Status(s))),
        (any::<u64>(), text_value()).prop_map(|(id, v)| call(id, CallEvent::PartnerDispname(v))),
        (any::<u64>(), any::<u64>()).prop_map(|(id, d)| call(id, CallEvent::Duration(d))),
        (any::<u64>(), text_value()).prop_map(|(id, v)| message(id, ChatMessageEvent::Body(v))),
        (any::<u64>(), text_value())
            .prop_map(|(id, v)| message(id, ChatMessageEvent::FromDispname(v))),
        (token(), token()).prop_map(|(name, partner)| Notification::Chat {
            name,
            event: ChatEvent::DialogPartner(partner)
        }),
        prop::collection::vec(any::<u64>(), 0..5).prop_map(|ids| Notification::ChatMessages(
            ids.into_iter().map(ChatMessageId).collect()
        )),
        prop::collection::vec(token(), 0..5).prop_map(Notification::Users),
        (token(), text_value())
            .prop_map(|(handle, text)| Notification::AuthRequest { handle, text }),
        token().prop_map(Notification::CurrentUserHandle),
        any::<u32>().prop_map(Notification::Protocol),
        any::<bool>().prop_map(Notification::SilentMode),
        (
            any::<u32>(),
            text_value().prop_filter("no leading space", |t| !t.starts_with(' '))
        )
            .prop_map(|(code, text)| Notification::Error { code, text }),
        Just(Notification::Ok),
        Just(Notification::Pong),
    ]
}

proptest! {
    #[test]
    fn parsing_never_panics(text in "\\PC{0,200}") {
        let incoming = Incoming::parse(&text);
        // Whatever it became, rendering it must not panic either.
        let _ = incoming.to_string();
    }

    #[test]
    fn parsing_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = Incoming::parse(&text);
    }

    #[test]
    fn keyword_prefixes_never_panic(
        head in prop_oneof![
            Just("CALL"), Just("CHAT"), Just("CHATMESSAGE"), Just("CHATMESSAGES"),
            Just("USER"), Just("ERROR"), Just("PROFILE"), Just("ALTER"), Just("#1 CALL"),
        ],
        tail in "[ 0-9A-Za-z,\u{e9}\u{1f600}]{0,30}",
    ) {
        let _ = Incoming::parse(&format!("{head}{tail}"));
    }

    #[test]
    fn rendered_notifications_parse_back(
        notification in known_notification(),
        tag in prop::option::of("[a-z0-9]{1,6}"),
    ) {
        let incoming = Incoming { tag, notification };
        prop_assert_eq!(Incoming::parse(&incoming.to_string()), incoming);
    }
}
