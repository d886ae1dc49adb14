package whisk.runtime.java;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.PrintStream;
import java.lang.reflect.Field;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardCopyOption;
import java.util.Base64;
import java.util.HashMap;
import java.util.Map;
import java.util.jar.JarFile;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import com.google.gson.JsonPrimitive;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;

/**
 * whisk-rs runtime proxy for Java actions (OpenWhisk runtime protocol, REFERENCE §13.2-13.4).
 *
 * <p>An action is a jar whose entry point is {@code public static JsonObject main(JsonObject)}
 * (Gson's type, from the classpath the proxy starts with, so the action and the proxy share one
 * {@code JsonObject} class). {@code main} names {@code Class} or {@code Class#method}.
 *
 * <p>Everything the proxy itself needs is loaded before it listens (see {@link #warmUp()}), so a
 * JVM started ahead of demand (a stem cell) pays only for the action's own classes at /init.
 *
 * <p>Requests are served one at a time on the server's dispatcher thread: a container runs one
 * activation at a time, and the environment the activation sees is process-wide.
 */
public final class Proxy {
    static final String SENTINEL = "XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX";
    static final int MAX_BODY = 80 * 1024 * 1024;

    private Method entry;
    private boolean initialized;

    public static void main(String[] args) throws IOException {
        // Headers and body leave in separate writes; without this every reply waits for the
        // client's delayed ACK.
        System.setProperty("sun.net.httpserver.nodelay", "true");
        warmUp();
        String host = envOr("__OW_PROXY_HOST", "0.0.0.0");
        int port = Integer.parseInt(envOr("__OW_PROXY_PORT", "8080"));
        HttpServer server = HttpServer.create(new InetSocketAddress(host, port), 64);
        Proxy proxy = new Proxy();
        server.createContext("/", proxy::handle);
        server.setExecutor(null);
        server.start();
        warmServer(server.getAddress().getPort());
        String portFile = System.getenv("__OW_PROXY_PORT_FILE");
        if (portFile != null && !portFile.isEmpty()) {
            Path partial = Paths.get(portFile + ".partial");
            Files.write(partial, Integer.toString(server.getAddress().getPort()).getBytes(StandardCharsets.UTF_8));
            Files.move(partial, Paths.get(portFile), StandardCopyOption.ATOMIC_MOVE);
        }
    }

    private static String envOr(String name, String fallback) {
        String value = System.getenv(name);
        return value == null || value.isEmpty() ? fallback : value;
    }

    /** Loads and links the classes every /init and /run uses, while nobody waits yet. */
    private static void warmUp() {
        JsonObject probe = JsonParser.parseString("{\"a\":[1,2.5,\"x\",true,null,{\"b\":{}}]}").getAsJsonObject();
        probe.addProperty("c", "d");
        probe.toString();
        Base64.getMimeDecoder().decode("UEsDBA==");
        exportEnvironment(new HashMap<>());
        try {
            Proxy.class.getDeclaredMethod("envText", JsonElement.class);
        } catch (NoSuchMethodException ignored) {
            // Only the reflection classes were wanted.
        }
        new ByteArrayOutputStream().toByteArray();
        URLClassLoader.class.getName();
        JarFile.class.getName();
        InvocationTargetException.class.getName();
    }

    /**
     * One request to our own server before anyone is told it listens: the first reply loads the
     * server's exchange classes and the date formatting of its headers (locale data, a good part
     * of the first /init otherwise). Loading a class from our own jar through a fresh class
     * loader exercises what loading an action's jar takes. Failures only cost the warm-up.
     */
    private static void warmServer(int port) {
        try (Socket socket = new Socket(InetAddress.getLoopbackAddress(), port)) {
            socket.setSoTimeout(10_000);
            String request = "POST /warm-up HTTP/1.1\r\nHost: proxy\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}";
            socket.getOutputStream().write(request.getBytes(StandardCharsets.US_ASCII));
            socket.getOutputStream().flush();
            InputStream in = socket.getInputStream();
            byte[] buffer = new byte[4096];
            while (in.read(buffer) > 0) {
                // Read the reply to its end, so the server finished writing it.
            }
        } catch (IOException ex) {
            // Not warmed: the first request pays instead.
        }
        try {
            URL own = Proxy.class.getProtectionDomain().getCodeSource().getLocation();
            try (URLClassLoader loader = new URLClassLoader(new URL[] {own}, null)) {
                Class.forName(Proxy.class.getName(), false, loader).getDeclaredMethods();
            }
        } catch (IOException | ReflectiveOperationException | LinkageError | RuntimeException ex) {
            // As above.
        }
    }

    private void handle(HttpExchange exchange) throws IOException {
        try {
            byte[] raw = readBody(exchange);
            if (raw == null) {
                reply(exchange, 413, error("request too large"));
                return;
            }
            String path = exchange.getRequestURI().getPath();
            JsonObject message;
            try {
                JsonElement parsed = JsonParser.parseString(new String(raw, StandardCharsets.UTF_8));
                if (!parsed.isJsonObject()) {
                    reply(exchange, 400, error("Error unmarshaling the request: not a JSON object"));
                    return;
                }
                message = parsed.getAsJsonObject();
            } catch (RuntimeException ex) {
                reply(exchange, 400, error("Error unmarshaling the request: " + ex.getMessage()));
                return;
            }
            if ("/init".equals(path)) {
                init(exchange, message);
            } else if ("/run".equals(path)) {
                run(exchange, message);
            } else {
                reply(exchange, 404, error("Not found"));
            }
        } finally {
            exchange.close();
        }
    }

    private static byte[] readBody(HttpExchange exchange) throws IOException {
        InputStream in = exchange.getRequestBody();
        ByteArrayOutputStream body = new ByteArrayOutputStream();
        byte[] buffer = new byte[64 * 1024];
        int n;
        while ((n = in.read(buffer)) > 0) {
            if (body.size() + n > MAX_BODY) {
                return null;
            }
            body.write(buffer, 0, n);
        }
        return body.toByteArray();
    }

    private void init(HttpExchange exchange, JsonObject message) throws IOException {
        if (initialized) {
            reply(exchange, 403, error("Cannot initialize the action more than once."));
            return;
        }
        JsonObject value = message.has("value") && message.get("value").isJsonObject()
                ? message.getAsJsonObject("value")
                : null;
        String code = value == null ? null : stringField(value, "code");
        String main = value == null ? null : stringField(value, "main");
        if (code == null || code.isEmpty() || main == null || main.isEmpty()) {
            reply(exchange, 403, error("Missing main/no code to execute."));
            return;
        }
        initialized = true;
        if (value.has("env") && value.get("env").isJsonObject()) {
            Map<String, String> env = new HashMap<>();
            for (Map.Entry<String, JsonElement> item : value.getAsJsonObject("env").entrySet()) {
                env.put(item.getKey(), envText(item.getValue()));
            }
            exportEnvironment(env);
        }
        try {
            entry = load(code, main);
            reply(exchange, 200, okBody());
        } catch (Exception | LinkageError ex) {
            // The action's jar or class is unusable: its own failure, told the way OpenWhisk's
            // Java runtime tells it, with the details in the logs.
            ex.printStackTrace(System.err);
            writeSentinels();
            reply(exchange, 502, error("An error has occurred (see logs for details): " + ex));
        }
    }

    private static String stringField(JsonObject object, String name) {
        JsonElement element = object.get(name);
        if (element == null || !element.isJsonPrimitive() || !element.getAsJsonPrimitive().isString()) {
            return null;
        }
        return element.getAsString();
    }

    private static JsonObject okBody() {
        JsonObject ok = new JsonObject();
        ok.addProperty("ok", true);
        return ok;
    }

    /** Writes the jar to the action directory, opens it and finds the entry method. */
    private static Method load(String code, String main) throws Exception {
        byte[] jar = Base64.getMimeDecoder().decode(code);
        Path directory = Paths.get(envOr("__OW_ACTION_DIR", "/action"));
        Files.createDirectories(directory);
        Path path = directory.resolve("action.jar");
        Files.write(path, jar);
        // Checked first so a file that is no jar at all says so, rather than "class not found".
        new JarFile(path.toFile()).close();
        int hash = main.indexOf('#');
        String className = hash < 0 ? main : main.substring(0, hash);
        String methodName = hash < 0 ? "main" : main.substring(hash + 1);
        URLClassLoader loader = new URLClassLoader(new URL[] {path.toUri().toURL()}, Proxy.class.getClassLoader());
        Class<?> type = Class.forName(className, true, loader);
        Method method = type.getMethod(methodName, JsonObject.class);
        if (!Modifier.isStatic(method.getModifiers())) {
            throw new NoSuchMethodException("Method " + methodName + " is not static in class " + className);
        }
        Thread.currentThread().setContextClassLoader(loader);
        return method;
    }

    private void run(HttpExchange exchange, JsonObject message) throws IOException {
        if (entry == null) {
            reply(exchange, 502, error("Cannot invoke an uninitialized action."));
            return;
        }
        JsonElement value = message.get("value");
        JsonObject args;
        if (value == null || value.isJsonNull()) {
            args = new JsonObject();
        } else if (value.isJsonObject()) {
            args = value.getAsJsonObject();
        } else {
            reply(exchange, 403, error("The action's argument must be a JSON object."));
            return;
        }
        Map<String, String> env = new HashMap<>();
        for (Map.Entry<String, JsonElement> item : message.entrySet()) {
            if (!"value".equals(item.getKey())) {
                env.put("__OW_" + item.getKey().toUpperCase(java.util.Locale.ROOT), envText(item.getValue()));
            }
        }
        exportEnvironment(env);
        int status;
        JsonObject body;
        try {
            Object result = entry.invoke(null, args);
            if (result == null) {
                status = 502;
                body = error("An error has occurred (see logs for details): "
                        + new NullPointerException("The action returned null"));
            } else if (result instanceof JsonObject) {
                status = 200;
                body = (JsonObject) result;
            } else {
                status = 502;
                body = error("The action did not return a dictionary.");
            }
        } catch (InvocationTargetException ex) {
            Throwable cause = ex.getCause() == null ? ex : ex.getCause();
            cause.printStackTrace(System.err);
            status = 502;
            body = error("An error has occurred while invoking the action (see logs for details): " + cause);
        } catch (Exception | LinkageError ex) {
            ex.printStackTrace(System.err);
            status = 502;
            body = error("An error has occurred (see logs for details): " + ex);
        }
        String text;
        try {
            text = body.toString();
        } catch (RuntimeException ex) {
            ex.printStackTrace(System.err);
            status = 502;
            text = error("The action did not return a dictionary.").toString();
        }
        writeSentinels();
        reply(exchange, status, text);
    }

    /**
     * Makes the activation's context visible to the action. Java cannot set its own environment,
     * so, as OpenWhisk's Java runtime does, the map behind {@code System.getenv()} is updated in
     * place (the JVM is started with {@code java.util} opened to the proxy for this); each entry is
     * also a system property, for a JVM that refuses the first way.
     */
    @SuppressWarnings("unchecked")
    static void exportEnvironment(Map<String, String> values) {
        for (Map.Entry<String, String> item : values.entrySet()) {
            System.setProperty(item.getKey(), item.getValue());
        }
        try {
            Map<String, String> visible = System.getenv();
            Field inner = visible.getClass().getDeclaredField("m");
            inner.setAccessible(true);
            Map<String, String> backing = (Map<String, String>) inner.get(visible);
            for (Map.Entry<String, String> item : values.entrySet()) {
                try {
                    backing.put(item.getKey(), item.getValue());
                } catch (IllegalArgumentException ex) {
                    // A name with '=' or a NUL cannot be an environment variable; the property stays.
                }
            }
        } catch (ReflectiveOperationException | RuntimeException ex) {
            // The environment stays as the process started; the system properties carry the values.
        }
    }

    /** Environment values are text: strings as they are, null empty, anything else as JSON. */
    static String envText(JsonElement value) {
        if (value == null || value.isJsonNull()) {
            return "";
        }
        if (value.isJsonPrimitive() && ((JsonPrimitive) value).isString()) {
            return value.getAsString();
        }
        return value.toString();
    }

    private static JsonObject error(String message) {
        JsonObject error = new JsonObject();
        error.addProperty("error", message);
        return error;
    }

    /** The action's own output first, then the sentinel line on each stream (§13.4). */
    private static void writeSentinels() {
        for (PrintStream stream : new PrintStream[] {System.out, System.err}) {
            stream.flush();
            stream.println(SENTINEL);
            stream.flush();
        }
    }

    private static void reply(HttpExchange exchange, int status, JsonObject body) throws IOException {
        reply(exchange, status, body.toString());
    }

    private static void reply(HttpExchange exchange, int status, String text) throws IOException {
        byte[] bytes = text.getBytes(StandardCharsets.UTF_8);
        exchange.getResponseHeaders().set("Content-Type", "application/json");
        exchange.sendResponseHeaders(status, bytes.length);
        try (OutputStream out = exchange.getResponseBody()) {
            out.write(bytes);
        }
    }

    private Proxy() {}
}
