//! `skype-sim network`: the emulated Skype cloud. Clients and `ctl` connect over TCP with the
//! framing of [`crate::sim::proto`]; one task per connection, a writer task per client fed by
//! a bounded queue.

mod chats;
pub mod media;
mod world;

pub use world::Network;

use crate::sim::proto::{CtlCommand, Down, Frame, FrameCodec, Reply, Request, Up};
use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn, Instrument};

/// Timings of the scripted parties. Defaults are human-scale; tests shorten them.
#[derive(Debug, Clone)]
pub struct NetworkConfig {
    pub listen: SocketAddr,
    /// CALL → ROUTING.
    pub routing_delay: Duration,
    /// ROUTING → RINGING.
    pub ring_delay: Duration,
    /// RINGING → the bot's answer (echo123 INPROGRESS, busybot BUSY, refusebot REFUSED).
    pub bot_answer_delay: Duration,
    /// EARLYMEDIA → INPROGRESS for SkypeOut numbers.
    pub pstn_answer_delay: Duration,
    /// Unanswered calls end as MISSED after this.
    pub ring_timeout: Duration,
    /// How late echo123 returns what it hears.
    pub echo_delay: Duration,
    /// A connection that has not sent its first whole frame (login or `ctl`) by then is
    /// closed: a silent or dripping peer holds neither a task nor a buffer for long.
    pub first_frame_timeout: Duration,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8099)),
            routing_delay: Duration::from_millis(80),
            ring_delay: Duration::from_millis(150),
            bot_answer_delay: Duration::from_millis(600),
            pstn_answer_delay: Duration::from_millis(2000),
            ring_timeout: Duration::from_secs(30),
            echo_delay: Duration::from_millis(200),
            first_frame_timeout: Duration::from_secs(10),
        }
    }
}

/// Binds the listener (so a caller knows it is ready when this returns) and serves until
/// `shutdown` is cancelled. Returns the bound address and the serving task.
pub async fn spawn(
    config: NetworkConfig,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    let config_first_frame = config.first_frame_timeout;
    let net = Network::new(config);
    info!(%addr, "skype-sim network listening");
    let task = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let net = Arc::clone(&net);
                        let stop = shutdown.child_token();
                        let first_frame_timeout = config_first_frame;
                        tokio::spawn(async move {
                            if let Err(e) = serve(net, stream, first_frame_timeout, stop).await {
                                debug!(%peer, error = %e, "connection ended");
                            }
                        });
                    }
                    Err(e) => {
                        warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        }
        info!("skype-sim network stopped");
    });
    Ok((addr, task))
}

async fn serve(
    net: Arc<Network>,
    stream: TcpStream,
    first_frame_timeout: Duration,
    shutdown: CancellationToken,
) -> Result<(), crate::sim::proto::ProtoError> {
    stream.set_nodelay(true)?;
    let mut framed = Framed::new(stream, FrameCodec);
    let first = tokio::time::timeout(first_frame_timeout, framed.next()).await;
    let first = match first {
        Ok(Some(Ok(Frame::Json(first)))) => first,
        Err(_) => {
            info!(after = ?first_frame_timeout, "connection sent no whole first frame; closing");
            return Ok(());
        }
        _ => return Ok(()),
    };
    match serde_json::from_slice::<Up>(&first)? {
        Up::Ctl { command } => {
            let (reply, blob) = ctl(&net, command);
            framed.send(Frame::json(&reply)?).await?;
            if let Some(blob) = blob {
                framed.send(Frame::Blob(blob)).await?;
            }
            Ok(())
        }
        Up::Login { user } => client_session(net, framed, user, shutdown).await,
        Up::Request { .. } => {
            framed
                .send(Frame::json(&Down::LoginRejected {
                    reason: "log in first".into(),
                })?)
                .await
        }
    }
}

async fn client_session(
    net: Arc<Network>,
    framed: Framed<TcpStream, FrameCodec>,
    user: String,
    shutdown: CancellationToken,
) -> Result<(), crate::sim::proto::ProtoError> {
    let (mut sink, mut stream) = framed.split();
    let (tx, mut rx) = mpsc::channel::<Frame>(1024);
    let session = match net.login(&user, tx.clone()) {
        Ok(id) => id,
        Err(reason) => {
            sink.send(Frame::json(&Down::LoginRejected { reason })?)
                .await?;
            return Ok(());
        }
    };
    let span = tracing::info_span!("session", session, user = %user);
    let writer = tokio::spawn(
        async move {
            while let Some(frame) = rx.recv().await {
                if let Err(e) = sink.send(frame).await {
                    debug!(error = %e, "write to client failed");
                    break;
                }
            }
        }
        .instrument(span.clone()),
    );
    let result = async {
        loop {
            let frame = tokio::select! {
                _ = shutdown.cancelled() => break,
                f = stream.next() => f,
            };
            match frame {
                None => break,
                Some(Err(e)) => {
                    warn!(error = %e, "bad frame from client");
                    break;
                }
                Some(Ok(Frame::Audio { call, pcm })) => net.audio(session, call, pcm),
                Some(Ok(Frame::Blob(_))) => {}
                Some(Ok(Frame::Json(bytes))) => match serde_json::from_slice::<Up>(&bytes) {
                    Ok(Up::Request { rid, request }) => {
                        debug!(?request, "request");
                        let reply = handle(&net, session, request);
                        if tx
                            .send(Frame::json(&Down::Reply { rid, reply })?)
                            .await
                            .is_err()
                        {
                            break;
                        }
                    }
                    Ok(other) => warn!(?other, "unexpected message after login"),
                    Err(e) => warn!(error = %e, "undecodable message from client"),
                },
            }
        }
        Ok(())
    }
    .instrument(span)
    .await;
    net.logout(session);
    drop(tx);
    writer.abort();
    result
}

fn handle(net: &Arc<Network>, session: u64, request: Request) -> Reply {
    match request {
        Request::Dial { target } => net.dial(session, &target),
        Request::Answer { call } => net.answer(session, call),
        Request::Hangup { call } => net.hangup(session, call),
        Request::Transfer { call, target } => net.transfer(call, &target),
        Request::Hold { call, on } => net.hold(call, on),
        Request::Dtmf { call, digit } => net.dtmf(call, digit),
        Request::ChatCreate { partner } => net.chat_create(session, &partner),
        Request::ChatPartner { chat } => net.chat_partner(session, &chat),
        Request::ChatSend { chat, body } => net.chat_send(session, &chat, &body),
        Request::ChatGet { message } => net.chat_get(message),
        Request::ChatSeen { message } => net.chat_seen(session, message),
        Request::MissedChats => net.missed_chats(session),
        Request::Authorize { handle } => net.authorize(session, &handle),
        Request::Deauthorize { handle } => net.deauthorize(session, &handle),
        Request::Block { handle, on } => net.block(session, &handle, on),
        Request::UserInfo { handle } => net.user_info(session, &handle),
        Request::Friends => net.friends(session),
        Request::SetBuddy {
            handle,
            status,
            text,
        } => net.set_buddy(session, &handle, status, &text),
    }
}

fn ctl(net: &Arc<Network>, command: CtlCommand) -> (Down, Option<bytes::Bytes>) {
    info!(?command, "ctl");
    let mut blob = None;
    let result = match command {
        CtlCommand::Call {
            from,
            to,
            source,
            seconds,
        } => net.ctl_call(&from, &to, source, seconds),
        CtlCommand::Answer { call, source } => net.ctl_answer(call, source),
        CtlCommand::Refuse { call } => net.ctl_refuse(call),
        CtlCommand::Hangup { call } => net.ctl_hangup(call),
        CtlCommand::Heard {
            party,
            call,
            with_pcm,
        } => net.ctl_heard(&party, call).map(|(value, samples)| {
            if with_pcm {
                let mut bytes = vec![0u8; samples.len() * 2];
                crate::media::dsp::samples_to_le_bytes(&samples, &mut bytes);
                blob = Some(bytes::Bytes::from(bytes));
            }
            value
        }),
        CtlCommand::Dtmf {
            call,
            digits,
            inband,
        } => net.ctl_dtmf(call, &digits, inband),
        CtlCommand::Hold { call, on } => net.ctl_hold(call, on),
        CtlCommand::Chat { from, to, text } => net.ctl_chat(&from, &to, &text),
        CtlCommand::Inbox { party } => net.ctl_inbox(&party),
        CtlCommand::AuthRequest { from, to, text } => net.ctl_auth_request(&from, &to, &text),
        CtlCommand::Contacts { user } => net.ctl_contacts(&user),
        CtlCommand::Presence { party, status } => net.ctl_presence(&party, &status),
        CtlCommand::Contact { user, handle, add } => net.ctl_contact(&user, &handle, add),
        CtlCommand::Crowd { user, count } => net.ctl_crowd(&user, count),
        CtlCommand::CrowdPresence { count, status } => net.ctl_crowd_presence(count, &status),
        CtlCommand::Calls => Ok(net.ctl_calls()),
        CtlCommand::Status => Ok(net.ctl_status()),
        CtlCommand::Balance { user, set } => net.ctl_balance(user.as_deref(), set),
        CtlCommand::Read { party } => net.ctl_read(&party),
        CtlCommand::Fault { user, fault } => net.ctl_fault(&user, fault),
    };
    let reply = match result {
        Ok(result) => Down::CtlReply {
            ok: true,
            result,
            error: String::new(),
        },
        Err(error) => Down::CtlReply {
            ok: false,
            result: serde_json::Value::Null,
            error,
        },
    };
    (reply, blob)
}
