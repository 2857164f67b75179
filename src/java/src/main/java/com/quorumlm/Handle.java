package com.quorumlm;

import com.sun.jna.Pointer;
import java.util.concurrent.atomic.AtomicReference;

/**
 * A C handle that is given back exactly once, whatever the threads: {@link #take()} hands it
 * to the one caller that frees it, every later caller gets null. A call racing a close may
 * still pass the old value; the library answers {@link Status#BAD_HANDLE} then (its handles
 * are registry ids, never raw pointers), which is thrown as a {@link LicenseException}.
 */
final class Handle {
    private final AtomicReference<Pointer> pointer;
    private final String what;

    Handle(Pointer pointer, String what) {
        this.pointer = new AtomicReference<>(pointer);
        this.what = what;
    }

    /** The handle to call with; {@link IllegalStateException} once it was closed. */
    Pointer get() {
        Pointer p = pointer.get();
        if (p == null) {
            throw new IllegalStateException("this " + what + " is closed");
        }
        return p;
    }

    /** The handle, for the one caller that frees it; null when it was taken already. */
    Pointer take() {
        return pointer.getAndSet(null);
    }

    boolean isClosed() {
        return pointer.get() == null;
    }
}
