package com.quorumlm;

/**
 * One holder named in a denial. The library describes a holder as {@code "user@host handle=7
 * count=1 since=<unix ms>"}, with {@code " display=:0"} when it has a display; {@link #text()}
 * is that description, and the fields are read from it (empty or 0 where it does not say).
 */
public record Holder(String text, String user, String host, long handle, int count, long sinceUnixMs, String display) {
    /** Reads a holder's description; never fails (unknown parts are left empty). */
    public static Holder parse(String text) {
        String user = "";
        String host = "";
        long handle = 0;
        int count = 0;
        long since = 0;
        String display = "";
        String[] words = text.trim().split("\\s+");
        if (words.length > 0 && !words[0].contains("=")) {
            int at = words[0].lastIndexOf('@');
            user = at < 0 ? words[0] : words[0].substring(0, at);
            host = at < 0 ? "" : words[0].substring(at + 1);
        }
        for (String word : words) {
            int eq = word.indexOf('=');
            if (eq < 0) {
                continue;
            }
            String value = word.substring(eq + 1);
            switch (word.substring(0, eq)) {
                case "handle" -> handle = number(value);
                case "count" -> count = (int) Math.min(Integer.MAX_VALUE, number(value));
                case "since" -> since = number(value);
                case "display" -> display = value;
                default -> { }
            }
        }
        return new Holder(text, user, host, handle, count, since, display);
    }

    private static long number(String text) {
        try {
            return Long.parseLong(text);
        } catch (NumberFormatException e) {
            return 0;
        }
    }

    @Override
    public String toString() {
        return text;
    }
}
