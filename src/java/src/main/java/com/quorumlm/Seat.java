package com.quorumlm;

import com.sun.jna.Pointer;

/**
 * A granted checkout. {@link #close()} checks it in, so try-with-resources gives the seats
 * back however the block ends; {@link #keep()} lets go of the handle without checking in (a
 * borrow that outlives the program). Thread-safe; closing it twice does nothing.
 */
public final class Seat implements AutoCloseable {
    private final Handle handle;
    private final long id;
    private final String feature;
    private final String version;
    private final int count;
    private final boolean nodeLocked;
    private final String source;

    private Seat(Pointer pointer, QuorumLM.CheckoutInfoStruct info) {
        this.handle = new Handle(pointer, "Seat");
        this.id = info.handle;
        this.feature = Errors.cString(info.feature);
        this.version = Errors.cString(info.version);
        this.count = info.count;
        this.nodeLocked = info.node_locked != 0;
        this.source = Errors.cString(info.source);
    }

    static Seat granted(Pointer pointer) throws LicenseException {
        QuorumLM c = QuorumLM.get();
        QuorumLM.CheckoutInfoStruct info = new QuorumLM.CheckoutInfoStruct();
        int code = c.qlm_checkout_info(pointer, info);
        if (code != Status.OK.code()) {
            try {
                Errors.check(code);
            } finally {
                c.qlm_checkin(pointer);
            }
        }
        return new Seat(pointer, info);
    }

    /** The cluster's handle of the checkout (0 for a node-locked grant). */
    public long handle() {
        return id;
    }

    public String feature() {
        return feature;
    }

    /** The version of the pool granted ("4.0"). */
    public String version() {
        return version;
    }

    /** Seats (or tokens) granted. */
    public int count() {
        return count;
    }

    /** Granted by a node-locked license line on this host, not by a cluster. */
    public boolean isNodeLocked() {
        return nodeLocked;
    }

    /** Where it came from: {@code "cluster a:7400,b:7400"} or {@code "node-locked /path/x.lic line 3"}. */
    public String source() {
        return source;
    }

    /** True until it is checked in or kept. */
    public boolean isHeld() {
        return !handle.isClosed();
    }

    /** Gives the seats back (a no-op for a node-locked grant). A second call does nothing. */
    public void checkin() throws LicenseException {
        Pointer pointer = handle.take();
        if (pointer == null) {
            return;
        }
        int code = QuorumLM.get().qlm_checkin(pointer);
        if (code != Status.OK.code()) {
            try {
                Errors.check(code);
            } finally {
                // The library frees a checkout it checked in; should a failed checkin have
                // left it, free it here (the session's close or expiry frees the seats).
                QuorumLM.get().qlm_checkout_free(pointer);
            }
        }
    }

    /** Same as {@link #checkin()}. */
    @Override
    public void close() throws LicenseException {
        checkin();
    }

    /**
     * Lets go of the handle without checking in: the seats stay held (a borrow, or a seat the
     * session's close or expiry will free). Closing afterwards does nothing.
     */
    public void keep() {
        Pointer pointer = handle.take();
        if (pointer != null) {
            QuorumLM.get().qlm_checkout_free(pointer);
        }
    }

    @Override
    public String toString() {
        return "Seat[" + feature + " " + version + " x" + count + " handle=" + id + " from " + source + "]";
    }
}
