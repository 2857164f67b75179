package com.quorumlm;

import com.sun.jna.CallbackThreadInitializer;
import com.sun.jna.Native;
import com.sun.jna.Pointer;
import com.sun.jna.ptr.IntByReference;
import com.sun.jna.ptr.PointerByReference;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * A session with the license sources: the library keeps it alive with heartbeats from its own
 * thread, and the cluster frees its seats when it closes or falls silent for its TTL.
 * Thread-safe; closing it twice does nothing.
 */
public final class LicenseSession implements AutoCloseable {
    /**
     * Every registered lost callback whose session is not closed yet. The library holds only a
     * C function pointer; this keeps the Java object behind it alive even when the program
     * drops its session without closing it.
     */
    private static final Set<QuorumLM.LostCallback> LIVE_CALLBACKS = ConcurrentHashMap.newKeySet();

    private final LicenseClient client;
    private final Handle handle;
    private final QuorumLM.LostCallback callback = this::lostFromLibrary;
    private final List<LostListener> listeners = new ArrayList<>();
    /** Set once, by the library's callback; guarded by {@code this}. */
    private LostReason lostReason;
    private String lostMessage;

    private LicenseSession(LicenseClient client, Pointer pointer) {
        this.client = client;
        this.handle = new Handle(pointer, "LicenseSession");
    }

    /** Wraps a session just opened and registers its lost callback. */
    static LicenseSession opened(LicenseClient client, Pointer pointer) throws LicenseException {
        LicenseSession session = new LicenseSession(client, pointer);
        QuorumLM c = QuorumLM.get();
        Native.setCallbackThreadInitializer(
                session.callback, new CallbackThreadInitializer(true, true, "quorumlm-lost"));
        LIVE_CALLBACKS.add(session.callback);
        int code = c.qlm_session_on_lost(pointer, session.callback, null);
        if (code != Status.OK.code()) {
            try {
                Errors.check(code);
            } finally {
                session.handle.take();
                c.qlm_session_close(pointer);
                LIVE_CALLBACKS.remove(session.callback);
            }
        }
        return session;
    }

    /** A checkout of one seat of any version, not queued. */
    public Seat checkout(String feature) throws LicenseException {
        return checkout(feature, CheckoutOptions.defaults());
    }

    /**
     * Checks {@code feature} out through the search path: the first source that grants it.
     * Throws {@link DeniedException} (with reason and holders) when every seat is taken and
     * {@code options} does not wait, {@link WaitTimeoutException} when a wait ran out, and
     * {@link UnreachableException} when no server answered.
     */
    public Seat checkout(String feature, CheckoutOptions options) throws LicenseException {
        if (feature == null) {
            throw new InvalidArgumentException("feature is null");
        }
        CheckoutOptions o = options == null ? CheckoutOptions.defaults() : options;
        if (o.count() < 0) {
            throw new InvalidArgumentException("count must be 1 to 1000000, not " + o.count());
        }
        PointerByReference out = new PointerByReference();
        Errors.check(QuorumLM.get().qlm_checkout(
                handle.get(), feature, o.version(), o.count(), o.waitMillis(), o.borrowUnixSeconds(), out));
        return Seat.granted(out.getValue());
    }

    /** True once the session is lost (see {@link #onLost}). */
    public boolean isLost() throws LicenseException {
        IntByReference lost = new IntByReference();
        Errors.check(QuorumLM.get().qlm_session_is_lost(handle.get(), lost));
        return lost.getValue() != 0;
    }

    /**
     * Calls {@code listener} once when the session is lost: at once if it is already known to
     * be. Listeners run on a thread of their own, never on the library's heartbeat thread, so
     * a slow listener delays no heartbeat.
     */
    public void onLost(LostListener listener) {
        if (listener == null) {
            throw new IllegalArgumentException("listener is null");
        }
        LostReason reason;
        String message;
        synchronized (this) {
            listeners.add(listener);
            reason = lostReason;
            message = lostMessage;
        }
        if (reason != null) {
            dispatch(List.of(listener), reason, message);
        }
    }

    /** The session as the library sees it now. */
    public SessionStatus status() throws LicenseException {
        QuorumLM.SessionStatusStruct out = new QuorumLM.SessionStatusStruct();
        Errors.check(QuorumLM.get().qlm_session_status(handle.get(), out));
        return new SessionStatus(
                Errors.cString(out.session_id),
                Errors.cString(out.server),
                Errors.cString(out.leader),
                out.heartbeats,
                out.lost != 0);
    }

    /** Closes the session on every cluster it opened (its seats are freed) and frees it. */
    @Override
    public void close() throws LicenseException {
        Pointer pointer = handle.take();
        if (pointer == null) {
            return;
        }
        client.forget(this);
        int code = QuorumLM.get().qlm_session_close(pointer);
        try {
            Errors.check(code);
        } finally {
            LIVE_CALLBACKS.remove(callback);
        }
    }

    /** The C callback: runs on the library's thread, so it only records and hands off. */
    private void lostFromLibrary(Pointer userData, int reason, Pointer message) {
        String text = message == null ? "" : message.getString(0, "UTF-8");
        List<LostListener> toCall;
        synchronized (this) {
            if (lostReason != null) {
                return;
            }
            lostReason = LostReason.of(reason);
            lostMessage = text;
            toCall = List.copyOf(listeners);
        }
        dispatch(toCall, LostReason.of(reason), text);
    }

    private static void dispatch(List<LostListener> toCall, LostReason reason, String message) {
        if (toCall.isEmpty()) {
            return;
        }
        Thread thread = new Thread(() -> {
            for (LostListener listener : toCall) {
                try {
                    listener.sessionLost(reason, message);
                } catch (RuntimeException | Error e) {
                    Thread self = Thread.currentThread();
                    self.getUncaughtExceptionHandler().uncaughtException(self, e);
                }
            }
        }, "quorumlm-session-lost");
        thread.setDaemon(true);
        thread.start();
    }
}
