//! A TCP proxy that a test can cut (close every connection and
//! refuse new ones) or stall (hold bytes without closing), then restore. It stands in
//! for a broker or database that stops or blocks, without touching the one other
//! tests use. Test support only (feature `test-support`).

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

#[derive(Debug)]
pub struct Proxy {
    pub port: u16,
    refusing: watch::Sender<bool>,
    stalled: watch::Sender<bool>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    pub async fn start(upstream: &'static str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (refusing, _) = watch::channel(false);
        let (stalled, _) = watch::channel(false);
        let connections: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (refusing_rx, stalled_tx, tasks) = (
            refusing.subscribe(),
            stalled.clone(),
            Arc::clone(&connections),
        );
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                if *refusing_rx.borrow() {
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(upstream).await else {
                    continue;
                };
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                let up = tokio::spawn(pump(client_read, server_write, stalled_tx.subscribe()));
                let down = tokio::spawn(pump(server_read, client_write, stalled_tx.subscribe()));
                let mut tasks = tasks.lock().unwrap();
                tasks.push(up);
                tasks.push(down);
            }
        });
        Proxy {
            port,
            refusing,
            stalled,
            connections,
        }
    }

    /// `amqp://guest:guest@127.0.0.1:<port>/%2f`, for a proxy in front of RabbitMQ.
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// The broker "stops": every connection closes, new ones are refused.
    pub fn cut(&self) {
        self.refusing.send_replace(true);
        for task in self.connections.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    /// The broker "blocks": connections stay open but nothing gets through.
    pub fn stall(&self) {
        self.stalled.send_replace(true);
    }

    /// The broker is back.
    pub fn restore(&self) {
        self.refusing.send_replace(false);
        self.stalled.send_replace(false);
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut stalled: watch::Receiver<bool>,
) {
    let mut buffer = vec![0_u8; 16 * 1024];
    loop {
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if stalled.wait_for(|s| !*s).await.is_err() {
            return;
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            return;
        }
    }
}
