//! Settlement verdicts in Postgres (`batch_settlements`), and posting a closed batch's
//! settlement to the journal. The rules are `recon_reconcile::settlement`.
