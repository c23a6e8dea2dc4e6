package saga

// WithoutRowLocks makes o use no SELECT ... FOR UPDATE on PostgreSQL, so
// that tests show correctness rests on the conditional UPDATEs alone.
func WithoutRowLocks(o *Orchestrator) { o.lockWait, o.lockSkip = "", "" }
