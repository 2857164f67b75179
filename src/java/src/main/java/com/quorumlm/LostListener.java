package com.quorumlm;

/** Told once when a session is lost; see {@link LicenseSession#onLost(LostListener)}. */
@FunctionalInterface
public interface LostListener {
    void sessionLost(LostReason reason, String message);
}
