//! Greylisting: the first attempt of a triple gets 450 4.2.0, a retry after the delay passes.

mod common;

use std::time::Duration;

use common::{Client, one_host};
use rollcall_sim::{FleetSpec, SimOptions};

#[tokio::test]
async fn greylisted_first_then_accepted_after_the_delay() {
    let spec = FleetSpec::from_toml(&one_host("")).unwrap();
    let delay = Duration::from_millis(300);
    let opts = SimOptions {
        greylist_delay: Some(delay),
        ..SimOptions::default()
    };
    let f = rollcall_sim::start(&spec, opts).await.unwrap();
    assert_eq!(f.greylist_delay(), delay);
    let addr = f.host_addr("mx.t.test").unwrap();
    let mut c = Client::greeted(addr).await;
    c.cmd("EHLO probe.test").await;
    c.cmd("MAIL FROM:<p@probe.test>").await;
    assert_eq!(
        c.cmd("RCPT TO:<alice@grey.test>").await,
        "450 4.2.0 <alice@grey.test>: Recipient address rejected: Greylisted, see http://postgrey.schweikert.ch/help/grey.test.html"
    );
    // Unknown users are greylisted too: the 550 comes only after the delay.
    assert!(
        c.cmd("RCPT TO:<nobody@grey.test>")
            .await
            .starts_with("450 4.2.0")
    );
    // postmaster is whitelisted (and unknown here).
    assert!(
        c.cmd("RCPT TO:<postmaster@grey.test>")
            .await
            .starts_with("550 5.1.1")
    );
    assert_eq!(c.cmd("QUIT").await, "221 2.0.0 Bye");

    tokio::time::sleep(delay + Duration::from_millis(50)).await;
    let mut c = Client::greeted(addr).await;
    c.cmd("EHLO probe.test").await;
    c.cmd("MAIL FROM:<p@probe.test>").await;
    assert_eq!(c.cmd("RCPT TO:<alice@grey.test>").await, "250 2.1.5 Ok");
    assert!(
        c.cmd("RCPT TO:<nobody@grey.test>")
            .await
            .starts_with("550 5.1.1")
    );
    c.cmd("RSET").await;
    // Another sender is a new triple.
    c.cmd("MAIL FROM:<other@probe.test>").await;
    assert!(
        c.cmd("RCPT TO:<alice@grey.test>")
            .await
            .starts_with("450 4.2.0")
    );
}
