// `stablelearn launch` (distributed/launch.h): fork/exec N ranks, forward signals, stop all on the
// first failure.
#include "stablelearn/distributed/launch.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <iostream>
#include <thread>

#include "stablelearn/core/error.h"

namespace stablelearn::distributed {

namespace {

volatile sig_atomic_t g_signal = 0;
void on_signal(int sig) { g_signal = sig; }

int exit_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

std::string how(int status) {
  if (WIFSIGNALED(status)) return std::string("was killed by signal ") + std::to_string(WTERMSIG(status)) + " (" + strsignal(WTERMSIG(status)) + ")";
  return "exited with status " + std::to_string(exit_status(status));
}

}  // namespace

int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  SL_CHECK(fd >= 0, IoError, "launch: cannot open a socket to find a free port: ", std::strerror(errno));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof(a);
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0;
  const int err = errno;
  ::close(fd);
  SL_CHECK(ok, IoError, "launch: cannot bind 127.0.0.1:0 to find a free port: ", std::strerror(err));
  return ntohs(a.sin_port);
}

int launch(const LaunchOptions& o) {
  SL_CHECK(o.nproc >= 1, UsageError, "launch: --nproc ", o.nproc, " must be at least 1");
  SL_CHECK(o.threads_per_proc >= 0, UsageError, "launch: --threads-per-proc ", o.threads_per_proc, " must be >= 0");
  SL_CHECK(o.master_port >= 0 && o.master_port <= 65535, UsageError, "launch: --master-port ", o.master_port,
           " is outside 0..65535");
  SL_CHECK(!o.command.empty(), UsageError, "launch: no command to run (stablelearn launch --nproc N -- COMMAND ...)");
  SL_CHECK(!o.program.empty(), UsageError, "launch: no program");
  const int port = o.master_port > 0 ? o.master_port : free_port();
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  const int threads = o.threads_per_proc > 0 ? o.threads_per_proc : std::max(1, static_cast<int>(cores) / o.nproc);

  // Signals arriving while ranks start are recorded and forwarded in the wait loop.
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  struct sigaction old_int {}, old_term {};
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);
  g_signal = 0;

  std::vector<pid_t> pids(static_cast<std::size_t>(o.nproc), -1);
  const pid_t parent = ::getpid();
  for (int r = 0; r < o.nproc; ++r) {
    std::vector<std::string> args{o.program, "--threads", std::to_string(threads)};
    args.insert(args.end(), o.command.begin(), o.command.end());
    std::vector<std::string> env{"MASTER_ADDR=127.0.0.1",
                                 "MASTER_PORT=" + std::to_string(port),
                                 "RANK=" + std::to_string(r),
                                 "LOCAL_RANK=" + std::to_string(r),
                                 "WORLD_SIZE=" + std::to_string(o.nproc),
                                 "STABLELEARN_DIST_TIMEOUT=" + std::to_string(o.timeout_s),
                                 "OMP_NUM_THREADS=" + std::to_string(threads)};
    const pid_t pid = ::fork();
    if (pid < 0) {
      const int err = errno;
      for (pid_t p : pids)
        if (p > 0) ::kill(p, SIGKILL);
      for (pid_t p : pids)
        if (p > 0) ::waitpid(p, nullptr, 0);
      SL_THROW(IoError, "launch: cannot start rank ", r, ": fork: ", std::strerror(err));
    }
    if (pid == 0) {
      // The rank: default signal handling, dies with the launcher, the torchrun variables set.
      ::signal(SIGINT, SIG_DFL);
      ::signal(SIGTERM, SIG_DFL);
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(127);
      for (const auto& kv : env) ::putenv(const_cast<char*>(kv.c_str()));
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      ::execv(o.program.c_str(), argv.data());
      std::cerr << "stablelearn launch: rank " << r << ": cannot run " << o.program << ": " << std::strerror(errno) << "\n";
      ::_exit(127);
    }
    pids[static_cast<std::size_t>(r)] = pid;
  }

  int result = 0, live = o.nproc, forwarded = 0;
  bool stopping = false;
  auto stop_started = std::chrono::steady_clock::now();
  bool killed = false;
  auto stop_all = [&](int sig) {
    for (pid_t p : pids)
      if (p > 0) ::kill(p, sig);
  };
  while (live > 0) {
    if (g_signal != 0 && g_signal != forwarded) {
      forwarded = g_signal;
      stop_all(forwarded);
      if (!stopping) {
        stopping = true;
        stop_started = std::chrono::steady_clock::now();
        if (result == 0) result = 128 + forwarded;
      }
    }
    // Reap every rank that has ended since the last round. Failures of one round are reported
    // together; a rank killed by a signal is taken as the cause (its peers then fail on their
    // broken connections), else the lowest rank.
    struct Ended {
      int rank, status;
      pid_t pid;
    };
    std::vector<Ended> failed;
    int status = 0;
    pid_t done = 0;
    while ((done = ::waitpid(-1, &status, WNOHANG)) > 0) {
      const auto it = std::find(pids.begin(), pids.end(), done);
      if (it == pids.end()) continue;
      *it = -1;
      --live;
      if (exit_status(status) != 0 && !stopping) failed.push_back({static_cast<int>(it - pids.begin()), status, done});
    }
    if (done < 0 && errno != EINTR && errno != ECHILD) break;
    if (!failed.empty()) {
      std::stable_sort(failed.begin(), failed.end(),
                       [](const Ended& a, const Ended& b) { return WIFSIGNALED(a.status) && !WIFSIGNALED(b.status); });
      for (const auto& f : failed)
        std::cerr << "stablelearn launch: rank " << f.rank << " (pid " << f.pid << ") " << how(f.status) << "\n";
      std::cerr << "stablelearn launch: stopping the other " << live << " rank" << (live == 1 ? "" : "s") << "\n";
      result = std::max(1, exit_status(failed.front().status));
      stopping = true;
      stop_started = std::chrono::steady_clock::now();
      stop_all(SIGTERM);
    }
    if (stopping && !killed &&
        std::chrono::steady_clock::now() - stop_started > std::chrono::duration<double>(o.grace_s)) {
      stop_all(SIGKILL);
      killed = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  sigaction(SIGINT, &old_int, nullptr);
  sigaction(SIGTERM, &old_term, nullptr);
  return result;
}

}  // namespace stablelearn::distributed
