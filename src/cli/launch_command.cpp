// stablelearn launch: N local ranks of a stablelearn command with the torchrun environment
// (distributed/launch.h).
#include <unistd.h>

#include <climits>
#include <memory>
#include <string>
#include <vector>

#include "commands.h"
#include "stablelearn/core/error.h"
#include "stablelearn/distributed/launch.h"

namespace stablelearn::cli {

void register_launch_command(CLI::App& app, CommandRegistry& reg) {
  auto o = std::make_shared<distributed::LaunchOptions>();
  auto* launch = app.add_subcommand("launch", "Start N local ranks of a stablelearn command (data-parallel, like torchrun)");
  launch->add_option("--nproc", o->nproc, "Ranks to start on this machine")->required()->check(CLI::Range(1, 1024));
  launch->add_option("--threads-per-proc", o->threads_per_proc,
                     "Intra-op threads of every rank (default: cores / nproc, at least 1)")
      ->check(CLI::NonNegativeNumber);
  launch->add_option("--master-port", o->master_port,
                     "Port of rank 0's rendezvous store on 127.0.0.1 (default 0: a free port)")
      ->check(CLI::Range(0, 65535));
  launch->add_option("--timeout", o->timeout_s,
                     "Seconds the ranks wait for each other (rendezvous, every all-reduce) before failing")
      ->check(CLI::Range(1, 86400))
      ->capture_default_str();
  launch->add_option("COMMAND", o->command, "The stablelearn command every rank runs, after --")->required();
  launch->footer(
      "Every rank runs `stablelearn --threads T COMMAND` with MASTER_ADDR=127.0.0.1, MASTER_PORT, RANK,\n"
      "WORLD_SIZE, LOCAL_RANK and STABLELEARN_DIST_TIMEOUT set (torchrun's variables; a command started\n"
      "by torchrun reads the same ones). SIGINT/SIGTERM are forwarded to every rank; when one rank\n"
      "fails, the others are stopped and launch exits with that rank's status, naming it.\n"
      "Data-parallel commands: cl run (every strategy but hat) and lfd train (the hypernetwork\n"
      "learner); rank 0 writes the run directory.\n"
      "Example: stablelearn launch --nproc 2 --threads-per-proc 1 -- cl run configs/cl/split_fmnist_ewc.toml --out runs/ewc2");
  reg.add(launch, [o]() {
    char exe[PATH_MAX];
    const auto len = ::readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    SL_CHECK(len > 0, IoError, "launch: cannot find this program (/proc/self/exe)");
    o->program.assign(exe, static_cast<std::size_t>(len));
    SL_CHECK(o->command.front() != "launch", UsageError, "launch: the command of the ranks cannot be launch itself");
    return distributed::launch(*o);
  });
}

}  // namespace stablelearn::cli
