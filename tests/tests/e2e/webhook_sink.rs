//! A stand-in receiver for checking what the simulator sends: it verifies Standard
//! Webhooks signatures with its own code (an oracle independent of the simulator's)
//! and can fail first attempts to make the sender retry.

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// One request the sink received.
#[derive(Debug, Clone)]
pub struct Received {
    pub webhook_id: Option<String>,
    pub body: String,
    pub signature_valid: bool,
    pub signatures: usize,
    pub answered: u16,
}

#[derive(Default)]
pub struct Sink {
    pub received: Mutex<Vec<Received>>,
    /// Verifier tokens by account.
    pub tokens: Mutex<HashMap<String, Vec<String>>>,
    /// Answer 503 to the first attempt of ids whose last character is one of these.
    pub fail_first_attempt_of: Mutex<Vec<char>>,
}

impl Sink {
    /// Serves `POST /webhooks/helcim/{account_id}` on a free port; returns its URL
    /// template.
    pub fn start(self: &Arc<Self>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let sink = web::Data::from(Arc::clone(self));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(sink.clone())
                .route("/webhooks/helcim/{account_id}", web::post().to(receive))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        tokio::spawn(server);
        format!("http://127.0.0.1:{port}/webhooks/helcim/{{account_id}}")
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

async fn receive(
    req: HttpRequest,
    body: web::Bytes,
    sink: web::Data<Sink>,
    account: web::Path<String>,
) -> HttpResponse {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let webhook_id = header("webhook-id");
    let tokens = sink
        .tokens
        .lock()
        .unwrap()
        .get(account.as_str())
        .cloned()
        .unwrap_or_default();
    let signature = header("webhook-signature").unwrap_or_default();
    let signed_content = format!(
        "{}.{}.{}",
        webhook_id.clone().unwrap_or_default(),
        header("webhook-timestamp").unwrap_or_default(),
        String::from_utf8_lossy(&body)
    );
    let signature_valid = signature.split(' ').any(|entry| {
        let Some(sig) = entry
            .strip_prefix("v1,")
            .and_then(|s| STANDARD.decode(s).ok())
        else {
            return false;
        };
        tokens.iter().any(|token| {
            let key = STANDARD.decode(token).unwrap();
            let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
            mac.update(signed_content.as_bytes());
            mac.verify_slice(&sig).is_ok()
        })
    });
    let mut received = sink.received.lock().unwrap();
    let first_attempt = !received
        .iter()
        .any(|r| r.webhook_id == webhook_id && r.answered == 503);
    let fail = first_attempt
        && webhook_id
            .as_ref()
            .and_then(|id| id.chars().last())
            .is_some_and(|c| sink.fail_first_attempt_of.lock().unwrap().contains(&c));
    let answered = if fail { 503 } else { 204 };
    received.push(Received {
        webhook_id,
        body: String::from_utf8_lossy(&body).into_owned(),
        signature_valid,
        signatures: signature.split(' ').filter(|s| !s.is_empty()).count(),
        answered,
    });
    HttpResponse::build(actix_web::http::StatusCode::from_u16(answered).unwrap()).finish()
}
