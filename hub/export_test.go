package hub

// SetRecoveryHook installs fn as the recovery test hook (see
// testHookRecovery) and returns the function that removes it.
func SetRecoveryHook(fn func(step string)) (restore func()) {
	if fn == nil {
		testHookRecovery.Store(nil)
	} else {
		testHookRecovery.Store(&fn)
	}
	return func() { testHookRecovery.Store(nil) }
}
