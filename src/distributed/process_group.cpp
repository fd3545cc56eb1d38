// ProcessGroup on c10d (distributed/process_group.h): TCPStore + ProcessGroupGloo. The only file
// that includes the c10d headers; the choice of process group is made in make_group() alone.
#include "stablelearn/distributed/process_group.h"

#include <fmt/format.h>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <chrono>
#include <exception>

#include "stablelearn/core/error.h"

namespace stablelearn::distributed {

namespace {

std::string endpoint(const DistEnv& e) {
  return fmt::format("MASTER_ADDR={} MASTER_PORT={}", e.master_addr, e.master_port);
}

double seconds(std::chrono::milliseconds t) { return static_cast<double>(t.count()) / 1000.0; }

/// The first line of a libtorch error (the rest is its C++ stack).
std::string first_line(const std::exception& ex) {
  const std::string s = ex.what();
  return s.substr(0, s.find('\n'));
}

/// The collective backend: Gloo for CPU tensors (this libtorch has no NCCL; a CUDA build would pick
/// ProcessGroupNCCL here for CUDA tensors). Gloo's device binds the loopback interface when the
/// master is on this machine, else the address this host's name resolves to.
c10::intrusive_ptr<c10d::ProcessGroup> make_group(const c10::intrusive_ptr<c10d::Store>& store, const DistEnv& e) {
  auto opts = c10d::ProcessGroupGloo::Options::create(e.timeout);
  const bool local = e.master_addr == "localhost" || e.master_addr.rfind("127.", 0) == 0 || e.master_addr == "::1";
  opts->devices.push_back(local ? c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1")
                                : c10d::ProcessGroupGloo::createDefaultDevice());
  return c10::make_intrusive<c10d::ProcessGroupGloo>(store, e.rank, e.world_size, opts);
}

}  // namespace

struct ProcessGroup::Impl {
  DistEnv env;
  /// The rendezvous's deadline: the checks made while connecting wait only for what is left.
  std::chrono::steady_clock::time_point deadline;
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroup> group;
  std::int64_t collectives = 0;

  void run_allreduce(torch::Tensor& flat) {
    std::vector<at::Tensor> v{flat};
    try {
      auto work = group->allreduce(v);
      work->wait(env.timeout);
    } catch (const std::exception& ex) {
      SL_THROW(IoError, "rank ", env.rank, " of ", env.world_size, ": all-reduce failed (another rank stopped, or none answered within ",
               seconds(env.timeout), " s): ", first_line(ex));
    }
    ++collectives;
  }

  void run_broadcast(torch::Tensor& t, int root) {
    std::vector<at::Tensor> v{t};
    c10d::BroadcastOptions o;
    o.rootRank = root;
    try {
      auto work = group->broadcast(v, o);
      work->wait(env.timeout);
    } catch (const std::exception& ex) {
      SL_THROW(IoError, "rank ", env.rank, " of ", env.world_size, ": broadcast from rank ", root,
               " failed (another rank stopped, or none answered within ", seconds(env.timeout), " s): ", first_line(ex));
    }
    ++collectives;
  }
};

ProcessGroup::ProcessGroup(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ProcessGroup::~ProcessGroup() = default;
int ProcessGroup::rank() const { return impl_->env.rank; }
int ProcessGroup::size() const { return impl_->env.world_size; }
const DistEnv& ProcessGroup::env() const { return impl_->env; }
std::int64_t ProcessGroup::collectives() const { return impl_->collectives; }

std::unique_ptr<ProcessGroup> ProcessGroup::connect(const DistEnv& e) {
  SL_CHECK(e.world_size >= 1 && e.rank >= 0 && e.rank < e.world_size, UsageError, "RANK=", e.rank,
           " must be below WORLD_SIZE=", e.world_size);
  auto impl = std::make_unique<Impl>();
  impl->env = e;
  impl->deadline = std::chrono::steady_clock::now() + e.timeout;
  c10d::TCPStoreOptions so;
  so.port = static_cast<std::uint16_t>(e.master_port);
  so.isServer = e.rank == 0;
  so.numWorkers = static_cast<std::size_t>(e.world_size);
  // Joining is checked by check_same("WORLD_SIZE") below, which names the missing rank and waits
  // only for what is left of the timeout (the store's own wait for workers would take all of it
  // before any check).
  so.waitWorkers = false;
  so.timeout = e.timeout;
  try {
    impl->store = c10::make_intrusive<c10d::TCPStore>(e.master_addr, so);
  } catch (const std::exception& ex) {
    if (e.rank == 0)
      SL_THROW(UsageError, "rank 0 could not serve the rendezvous at ", endpoint(e), " (port in use?): ", first_line(ex));
    SL_THROW(UsageError, "rank ", e.rank, " could not reach rank 0's rendezvous at ", endpoint(e), " within ",
             seconds(e.timeout), " s (wrong MASTER_ADDR/MASTER_PORT, or rank 0 not running?): ", first_line(ex));
  }
  auto group = std::unique_ptr<ProcessGroup>(new ProcessGroup(std::move(impl)));
  group->check_same("WORLD_SIZE", std::to_string(e.world_size));
  try {
    group->impl_->group = make_group(group->impl_->store, e);
  } catch (const std::exception& ex) {
    SL_THROW(UsageError, "rank ", e.rank, ": the Gloo process group of WORLD_SIZE=", e.world_size, " at ", endpoint(e),
             " did not form within ", seconds(e.timeout), " s: ", first_line(ex));
  }
  return group;
}

// Rank 0 (which serves the store) compares every rank's value with its own and publishes a
// verdict; the other ranks read it and acknowledge, and rank 0 waits for the acknowledgements
// before it fails, so its store outlives every reader and each rank reports the real cause.
void ProcessGroup::check_same(const std::string& what, const std::string& value) {
  auto& s = *impl_->store;
  const auto& e = impl_->env;
  const auto key = [&](const std::string& kind, int r) { return fmt::format("stablelearn/check/{}/{}/{}", what, kind, r); };
  const auto bytes = [](const std::string& v) { return std::vector<std::uint8_t>(v.begin(), v.end()); };
  // Within connect(): the rest of the rendezvous's time; later: the whole timeout.
  const auto now = std::chrono::steady_clock::now();
  const auto wait = impl_->group ? e.timeout
                                 : std::max(std::chrono::milliseconds(100),
                                            std::chrono::duration_cast<std::chrono::milliseconds>(impl_->deadline - now));
  int waiting_for = 0;
  std::string verdict = "ok";
  try {
    if (e.rank == 0) {
      std::vector<int> answered;
      for (int r = 1; r < e.world_size && verdict == "ok"; ++r) {
        waiting_for = r;
        s.wait({key("value", r)}, wait);
        answered.push_back(r);
        const auto got = s.get(key("value", r));
        const std::string theirs(got.begin(), got.end());
        if (theirs != value)
          verdict = fmt::format("ranks disagree on {}: {} on rank 0, {} on rank {}", what, value, theirs, r);
      }
      s.set(key("verdict", 0), bytes(verdict));
      for (int r : answered) {
        try {
          s.wait({key("ack", r)}, std::chrono::milliseconds(std::min<std::int64_t>(wait.count(), 5000)));
        } catch (const std::exception&) {  // a rank that died meanwhile: nothing to wait for
        }
      }
    } else {
      s.set(key("value", e.rank), bytes(value));
      s.wait({key("verdict", 0)}, wait);
      const auto got = s.get(key("verdict", 0));
      verdict.assign(got.begin(), got.end());
      s.set(key("ack", e.rank), bytes("1"));
    }
  } catch (const std::exception& ex) {
    SL_THROW(UsageError, "rank ", e.rank, ": rank ", waiting_for, " did not join within ", seconds(e.timeout),
             " s (WORLD_SIZE=", e.world_size, "; is every rank started, with ", endpoint(e), "?) [comparing ", what,
             "]: ", first_line(ex));
  }
  SL_CHECK(verdict == "ok", ConfigError, verdict, e.rank != 0 ? fmt::format(" (reported to rank {})", e.rank) : "");
}

void ProcessGroup::all_reduce(const std::vector<torch::Tensor>& tensors, Reduce op, std::int64_t bucket_bytes) {
  torch::NoGradGuard no_grad;
  std::size_t i = 0;
  while (i < tensors.size()) {
    // One bucket: consecutive tensors of one dtype and device, at most bucket_bytes (at least one).
    std::size_t j = i;
    std::int64_t bytes = 0;
    while (j < tensors.size() && tensors[j].scalar_type() == tensors[i].scalar_type() &&
           tensors[j].device() == tensors[i].device() &&
           (j == i || bytes + tensors[j].numel() * static_cast<std::int64_t>(tensors[j].element_size()) <= bucket_bytes)) {
      bytes += tensors[j].numel() * static_cast<std::int64_t>(tensors[j].element_size());
      ++j;
    }
    std::vector<torch::Tensor> flat_parts;
    for (std::size_t k = i; k < j; ++k) flat_parts.push_back(tensors[k].reshape({-1}));
    auto flat = j - i == 1 && tensors[i].is_contiguous() ? tensors[i].view({-1}) : torch::cat(flat_parts);
    impl_->run_allreduce(flat);
    if (op == Reduce::Mean) flat.div_(static_cast<double>(impl_->env.world_size));
    if (!(j - i == 1 && tensors[i].is_contiguous())) {
      std::int64_t off = 0;
      for (std::size_t k = i; k < j; ++k) {
        const auto n = tensors[k].numel();
        tensors[k].copy_(flat.narrow(0, off, n).view(tensors[k].sizes()));
        off += n;
      }
    }
    i = j;
  }
}

void ProcessGroup::all_reduce_gradients(const std::vector<torch::Tensor>& params, Reduce op, std::int64_t bucket_bytes) {
  std::vector<torch::Tensor> grads;
  for (const auto& p : params) {
    auto& g = const_cast<torch::Tensor&>(p).mutable_grad();
    if (!g.defined()) g = torch::zeros_like(p);
    grads.push_back(g);
  }
  all_reduce(grads, op, bucket_bytes);
}

std::string ProcessGroup::broadcast(const std::string& bytes, int root) {
  SL_CHECK(root >= 0 && root < size(), UsageError, "broadcast: root rank ", root, " is not one of 0..", size() - 1);
  const bool me = rank() == root;
  auto len = torch::full({1}, me ? static_cast<std::int64_t>(bytes.size()) : std::int64_t{0}, torch::kInt64);
  impl_->run_broadcast(len, root);
  const auto n = len.item<std::int64_t>();
  if (n == 0) return {};
  auto data = me ? torch::from_blob(const_cast<char*>(bytes.data()), {n}, torch::kUInt8).clone()
                 : torch::empty({n}, torch::kUInt8);
  impl_->run_broadcast(data, root);
  if (me) return bytes;
  return std::string(reinterpret_cast<const char*>(data.data_ptr<std::uint8_t>()), static_cast<std::size_t>(n));
}

void ProcessGroup::barrier() {
  auto t = torch::zeros({1}, torch::kFloat32);
  all_reduce({t});
}

struct GradientReducer::State {
  ProcessGroup::Impl* group = nullptr;
  std::vector<torch::Tensor> params;
  struct Bucket {
    std::vector<std::size_t> members;  ///< parameter indices
    std::vector<std::int64_t> offsets;
    torch::Tensor flat;
    std::size_t pending = 0;
    c10::intrusive_ptr<c10d::Work> work;
  };
  std::vector<Bucket> buckets;
  std::vector<std::size_t> bucket_of, slot_of;
  std::vector<char> seen;
  std::size_t next = 0;  ///< the next bucket to start (buckets start in order)
  bool armed = false;
  std::int64_t during_backward = 0;
  std::vector<unsigned> hooks;  ///< handles of the parameters' hooks (removed with the reducer)

  void start(Bucket& b) {
    std::vector<at::Tensor> v{b.flat};
    try {
      b.work = group->group->allreduce(v);
    } catch (const std::exception& ex) {
      SL_THROW(IoError, "rank ", group->env.rank, " of ", group->env.world_size, ": all-reduce failed to start: ", first_line(ex));
    }
    ++group->collectives;
  }
  /// Starts every complete bucket from `next` on, in order.
  void start_ready() {
    while (next < buckets.size() && buckets[next].pending == 0) {
      start(buckets[next]);
      ++next;
      if (armed) ++during_backward;
    }
  }
  void on_grad(std::size_t i, const torch::Tensor& g) {
    auto& b = buckets[bucket_of[i]];
    SL_CHECK(!b.work, InternalError, "GradientReducer: a second gradient for parameter ", i,
             " after its bucket was sent (two backward passes between prepare() and finish())");
    const auto n = params[i].numel();
    auto dst = b.flat.narrow(0, b.offsets[slot_of[i]], n);
    torch::NoGradGuard no_grad;
    if (seen[i]) {
      dst.add_(g.reshape({-1}));
      return;
    }
    dst.copy_(g.reshape({-1}));
    seen[i] = 1;
    --b.pending;
    if (b.pending == 0) start_ready();
  }
  void wait(Bucket& b) {
    try {
      b.work->wait(group->env.timeout);
    } catch (const std::exception& ex) {
      SL_THROW(IoError, "rank ", group->env.rank, " of ", group->env.world_size,
               ": all-reduce failed (another rank stopped, or none answered within ", seconds(group->env.timeout),
               " s): ", first_line(ex));
    }
    b.work.reset();
  }
};

GradientReducer::GradientReducer(ProcessGroup& group, std::vector<torch::Tensor> params, std::int64_t bucket_bytes)
    : s_(std::make_shared<State>()) {
  SL_CHECK(!params.empty(), UsageError, "GradientReducer: no parameters");
  s_->group = group.impl_.get();
  s_->params = std::move(params);
  const auto n = s_->params.size();
  s_->bucket_of.assign(n, 0);
  s_->slot_of.assign(n, 0);
  s_->seen.assign(n, 0);
  // Reverse order; a bucket holds one dtype, at most bucket_bytes (at least one parameter).
  std::int64_t bytes = 0;
  for (std::size_t k = n; k-- > 0;) {
    const auto& p = s_->params[k];
    const auto pb = p.numel() * static_cast<std::int64_t>(p.element_size());
    auto* last = s_->buckets.empty() ? nullptr : &s_->buckets.back();
    if (!last || s_->params[last->members.front()].scalar_type() != p.scalar_type() || bytes + pb > bucket_bytes) {
      s_->buckets.emplace_back();
      last = &s_->buckets.back();
      bytes = 0;
    }
    s_->bucket_of[k] = s_->buckets.size() - 1;
    s_->slot_of[k] = last->members.size();
    last->offsets.push_back(last->members.empty() ? 0 : last->offsets.back() + s_->params[last->members.back()].numel());
    last->members.push_back(k);
    bytes += pb;
  }
  for (auto& b : s_->buckets) {
    std::int64_t total = 0;
    for (auto m : b.members) total += s_->params[m].numel();
    b.flat = torch::zeros({total}, s_->params[b.members.front()].options().requires_grad(false));
  }
  // The hooks hold a weak reference (and are removed by the destructor): a reducer destroyed before
  // its parameters leaves no hook that could act.
  std::weak_ptr<State> weak = s_;
  for (std::size_t k = 0; k < n; ++k) {
    auto& p = s_->params[k];
    SL_CHECK(p.requires_grad(), UsageError, "GradientReducer: parameter ", k, " does not require a gradient");
    s_->hooks.push_back(p.register_hook([weak, k](const torch::Tensor& g) {
      if (auto st = weak.lock(); st && st->armed && g.defined()) st->on_grad(k, g);
    }));
  }
}

GradientReducer::~GradientReducer() {
  for (std::size_t k = 0; k < s_->params.size() && k < s_->hooks.size(); ++k) {
    try {
      s_->params[k].remove_hook(s_->hooks[k]);
    } catch (const std::exception&) {  // never throw from a destructor; the hook is inert anyway
    }
  }
}

void GradientReducer::prepare() {
  SL_CHECK(!s_->armed, InternalError, "GradientReducer::prepare() twice without finish()");
  for (auto& b : s_->buckets) {
    b.pending = b.members.size();
    b.work.reset();
  }
  std::fill(s_->seen.begin(), s_->seen.end(), 0);
  s_->next = 0;
  s_->armed = true;
}

void GradientReducer::finish(const std::vector<torch::Tensor>& extra) {
  SL_CHECK(s_->armed, InternalError, "GradientReducer::finish() without prepare()");
  s_->armed = false;
  torch::NoGradGuard no_grad;
  // Parameters backward did not reach count as zeros; then every remaining bucket starts, in order.
  for (auto& b : s_->buckets)
    for (std::size_t j = 0; j < b.members.size(); ++j)
      if (!s_->seen[b.members[j]]) {
        b.flat.narrow(0, b.offsets[j], s_->params[b.members[j]].numel()).zero_();
        s_->seen[b.members[j]] = 1;
        --b.pending;
      }
  s_->start_ready();
  torch::Tensor tail;
  if (!extra.empty()) {
    std::vector<torch::Tensor> parts;
    for (const auto& t : extra) parts.push_back(t.reshape({-1}).to(extra.front().scalar_type()));
    tail = torch::cat(parts);
    std::vector<at::Tensor> v{tail};
    try {
      auto work = s_->group->group->allreduce(v);
      ++s_->group->collectives;
      for (auto& b : s_->buckets) s_->wait(b);
      work->wait(s_->group->env.timeout);
    } catch (const Error&) {
      throw;
    } catch (const std::exception& ex) {
      SL_THROW(IoError, "rank ", s_->group->env.rank, " of ", s_->group->env.world_size,
               ": all-reduce failed (another rank stopped, or none answered within ", seconds(s_->group->env.timeout),
               " s): ", first_line(ex));
    }
    std::int64_t off = 0;
    for (const auto& t : extra) {
      const auto n = t.numel();
      const_cast<torch::Tensor&>(t).copy_(tail.narrow(0, off, n).view(t.sizes()));
      off += n;
    }
  } else {
    for (auto& b : s_->buckets) s_->wait(b);
  }
  for (auto& b : s_->buckets)
    for (std::size_t j = 0; j < b.members.size(); ++j) {
      auto& p = s_->params[b.members[j]];
      const auto sum = b.flat.narrow(0, b.offsets[j], p.numel()).view(p.sizes());
      auto& g = p.mutable_grad();
      if (g.defined())
        g.copy_(sum);
      else
        g = sum.clone();
    }
}

std::int64_t GradientReducer::buckets() const { return static_cast<std::int64_t>(s_->buckets.size()); }
std::int64_t GradientReducer::started_during_backward() const { return s_->during_backward; }

Shard shard(std::int64_t n, int rank, int world) {
  const std::int64_t base = n / world, extra = n % world;
  Shard s;
  s.count = base + (rank < extra ? 1 : 0);
  s.begin = rank * base + std::min<std::int64_t>(rank, extra);
  return s;
}

}  // namespace stablelearn::distributed
