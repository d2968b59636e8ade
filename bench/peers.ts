/**
 * The programs people would use instead of ours, run on loopback beside it for the benchmarks:
 * nginx serving a folder, and a check for a program on PATH.
 */

/** True when `command` is on PATH. */
export async function has(command: string): Promise<boolean> {
  const found = await new Deno.Command("sh", {
    args: ["-c", `command -v ${command}`],
    stdout: "null",
  })
    .output();
  return found.success;
}

/** A free TCP port on loopback. */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** Resolves once something accepts connections on `port`. */
export async function accepting(port: number): Promise<void> {
  for (let attempt = 0;; attempt++) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      return;
    } catch (error) {
      if (attempt > 200) throw error;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }
}

/** nginx serving `root` on a free port, its files under `work`; stop it with `stop`. */
export async function startNginx(
  root: string,
  work: string,
): Promise<{ port: number; stop: () => Promise<void> }> {
  const port = freePort();
  const prefix = `${work}/nginx`;
  await Deno.mkdir(`${prefix}/logs`, { recursive: true });
  await Deno.writeTextFile(
    `${prefix}/nginx.conf`,
    `daemon off; worker_processes auto; pid ${prefix}/nginx.pid; error_log ${prefix}/logs/error.log;
events { worker_connections 4096; }
http { access_log off; sendfile on; tcp_nopush on; keepalive_requests 1000000;
  server { listen 127.0.0.1:${port}; root ${root}; } }
`,
  );
  const process = new Deno.Command("nginx", { args: ["-p", prefix, "-c", `${prefix}/nginx.conf`] })
    .spawn();
  await accepting(port);
  return {
    port,
    stop: async () => {
      process.kill("SIGTERM");
      await process.status;
    },
  };
}
