//! The writing half of one listener connection: a task draining a bounded queue, so a
//! client that reads slowly holds up only itself. Replies wait for room in the queue;
//! events are offered and, when there is no room, counted as lost by the caller.

use bytes::Bytes;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::io::{AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub(crate) struct Writer {
    queue: mpsc::Sender<Bytes>,
    abort: CancellationToken,
    last_words: Arc<Mutex<Option<Bytes>>>,
    task: JoinHandle<()>,
    write_timeout: Duration,
}

pub(crate) enum Offer {
    Queued,
    Full,
    Closed,
}

#[derive(Debug)]
pub(crate) struct WriterGone;

impl Writer {
    pub(crate) fn spawn<W>(sink: W, capacity: usize, write_timeout: Duration) -> Writer
    where
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let (queue, receiver) = mpsc::channel(capacity.max(1));
        let abort = CancellationToken::new();
        let last_words = Arc::new(Mutex::new(None));
        let task = tokio::spawn(write_loop(
            sink,
            receiver,
            abort.clone(),
            last_words.clone(),
            write_timeout,
        ));
        Writer {
            queue,
            abort,
            last_words,
            task,
            write_timeout,
        }
    }

    /// Queues a reply, waiting for room.
    pub(crate) async fn send(&self, bytes: impl Into<Bytes>) -> Result<(), WriterGone> {
        self.queue.send(bytes.into()).await.map_err(|_| WriterGone)
    }

    /// Queues an event or log line if there is room.
    pub(crate) fn offer(&self, bytes: Bytes) -> Offer {
        match self.queue.try_send(bytes) {
            Ok(()) => Offer::Queued,
            Err(mpsc::error::TrySendError::Full(_)) => Offer::Full,
            Err(mpsc::error::TrySendError::Closed(_)) => Offer::Closed,
        }
    }

    /// Resolves when the writing task has ended (write error, or a write that the client
    /// did not drain within the write timeout).
    pub(crate) async fn gone(&self) {
        self.queue.closed().await
    }

    /// Writes everything queued, then `notice`, then closes the socket.
    pub(crate) async fn finish(self, notice: Option<Bytes>) {
        self.set_last_words(notice);
        let Writer {
            queue,
            task,
            write_timeout,
            ..
        } = self;
        drop(queue);
        Self::wait(task, write_timeout).await;
    }

    /// Drops what is queued (after the message being written), writes `notice`, closes.
    pub(crate) async fn abort(self, notice: Option<Bytes>) {
        self.set_last_words(notice);
        self.abort.cancel();
        let Writer {
            task,
            write_timeout,
            ..
        } = self;
        Self::wait(task, write_timeout).await;
    }

    fn set_last_words(&self, notice: Option<Bytes>) {
        *self
            .last_words
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = notice;
    }

    async fn wait(mut task: JoinHandle<()>, write_timeout: Duration) {
        // Each write is bounded by the write timeout; the queue drain plus the notice can
        // take a few of them.
        if tokio::time::timeout(write_timeout * 3, &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
    }
}

async fn write_loop<W>(
    sink: W,
    mut receiver: mpsc::Receiver<Bytes>,
    abort: CancellationToken,
    last_words: Arc<Mutex<Option<Bytes>>>,
    write_timeout: Duration,
) where
    W: AsyncWrite + Unpin,
{
    let mut sink = BufWriter::with_capacity(64 * 1024, sink);
    loop {
        let next = tokio::select! {
            biased;
            _ = abort.cancelled() => None,
            next = receiver.recv() => next,
        };
        let Some(bytes) = next else {
            break;
        };
        if !write_bounded(&mut sink, &bytes, write_timeout).await {
            return;
        }
        // Flush when the queue runs dry: bursts go out in few writes, single replies at once.
        if receiver.is_empty()
            && !matches!(
                tokio::time::timeout(write_timeout, sink.flush()).await,
                Ok(Ok(()))
            )
        {
            return;
        }
    }
    receiver.close();
    let notice = last_words
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    if let Some(notice) = notice {
        if !write_bounded(&mut sink, &notice, write_timeout).await {
            return;
        }
    }
    let _ = tokio::time::timeout(write_timeout, async {
        let _ = sink.flush().await;
        let _ = sink.shutdown().await;
    })
    .await;
}

async fn write_bounded<W: AsyncWrite + Unpin>(
    sink: &mut BufWriter<W>,
    bytes: &[u8],
    write_timeout: Duration,
) -> bool {
    matches!(
        tokio::time::timeout(write_timeout, sink.write_all(bytes)).await,
        Ok(Ok(()))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn finish_drains_then_writes_the_notice() {
        let (client, server) = tokio::io::duplex(1024);
        let writer = Writer::spawn(server, 4, Duration::from_secs(5));
        assert!(writer.send(Bytes::from_static(b"one ")).await.is_ok());
        assert!(matches!(
            writer.offer(Bytes::from_static(b"two ")),
            Offer::Queued
        ));
        writer.finish(Some(Bytes::from_static(b"bye"))).await;
        let mut text = String::new();
        let mut client = client;
        assert!(client.read_to_string(&mut text).await.is_ok());
        assert_eq!(text, "one two bye");
    }

    #[tokio::test]
    async fn a_full_queue_refuses_offers() {
        let (_client, server) = tokio::io::duplex(8);
        let writer = Writer::spawn(server, 2, Duration::from_millis(200));
        let mut full = false;
        for _ in 0..64 {
            if matches!(writer.offer(Bytes::from_static(b"0123456789")), Offer::Full) {
                full = true;
                break;
            }
            tokio::task::yield_now().await;
        }
        assert!(full);
        writer.abort(None).await;
    }
}
