#include "coordinator/job_watchers.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "services/grpc_status.h"
#include "services/job_state.h"

namespace caliber::coordinator {
namespace {

class Rejected final : public grpc::ServerWriteReactor<v1::QuantJobEvent> {
 public:
  explicit Rejected(const grpc::Status& status) { Finish(status); }
  void OnDone() override { delete this; }
};

}  // namespace

// One stream. Its fields are guarded by the owner's mu_. Ownership of the stream's next gRPC
// operation is the `busy` flag: whoever sets it (under mu_) is the only one who may call
// StartWrite or Finish, so no Finish (and hence no OnDone/delete) can race a StartWrite.
class JobWatchers::Watcher final : public grpc::ServerWriteReactor<v1::QuantJobEvent> {
 public:
  Watcher(JobWatchers& owner, std::string id) : job_id(std::move(id)), owner_(owner) {}

  void OnWriteDone(bool ok) override {
    Action next;
    {
      absl::MutexLock lock(&owner_.mu_);
      busy = false;
      writing.reset();
      if (!ok) cancelled = true;  // the stream is broken: nothing more can be written
      next = owner_.Next(*this);
    }
    Run(next);
  }

  void OnCancel() override {
    Action next;
    {
      absl::MutexLock lock(&owner_.mu_);
      cancelled = true;
      if (!busy) next = owner_.Next(*this);  // else the write in flight completes first
    }
    Run(next);
  }

  void OnDone() override {
    {
      absl::MutexLock lock(&owner_.mu_);
      owner_.Unregister(*this);
      --owner_.open_;
    }
    delete this;
  }

  const std::string job_id;
  bool registered = false;     // in topics_[job_id].watchers
  bool busy = false;           // a write or the Finish is in flight (or being started)
  bool ending = false;         // Finish has been decided
  bool cancelled = false;      // the client went away
  bool sent_terminal = false;  // the last event written carries a terminal state
  int64_t sent = -1;           // version of the last event written
  std::shared_ptr<const v1::QuantJobEvent> writing;  // alive until OnWriteDone

 private:
  JobWatchers& owner_;
};

JobWatchers::JobWatchers(int64_t max_watchers)
    : max_watchers_(max_watchers), dispatcher_([this] { DispatchLoop(); }) {}

JobWatchers::~JobWatchers() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
    work_.Signal();
  }
  dispatcher_.join();
}

void JobWatchers::Publish(const v1::QuantJob& job, int64_t version) {
  absl::MutexLock lock(&mu_);
  auto it = topics_.find(job.job_id());
  if (it == topics_.end() || version <= it->second.version) return;  // unwatched, or stale
  Topic& t = it->second;
  auto event = std::make_shared<v1::QuantJobEvent>();
  *event->mutable_job() = job;
  t.version = version;
  t.event = std::move(event);
  if (!t.dirty) {
    t.dirty = true;
    dirty_.push_back(job.job_id());
    work_.Signal();
  }
}

grpc::ServerWriteReactor<v1::QuantJobEvent>* JobWatchers::Watch(const std::string& job_id,
                                                               const Snapshot& snapshot) {
  Watcher* w = nullptr;
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_) return Reject(grpc::Status(grpc::StatusCode::UNAVAILABLE, "the coordinator is shutting down"));
    if (open_ >= max_watchers_) {
      return Reject(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                                 absl::StrCat("already ", open_, " open WatchQuantJob streams (--max-watchers)")));
    }
    // Registered (so Publish records changes) but busy (so nothing is written) until the
    // snapshot has said the caller may see the job.
    w = new Watcher(*this, job_id);
    ++open_;
    w->busy = true;
    w->registered = true;
    topics_[job_id].watchers.insert(w);
  }
  int64_t version = -1;
  absl::StatusOr<v1::QuantJob> job = snapshot(&version);
  Action next;
  {
    absl::MutexLock lock(&mu_);
    w->busy = false;
    if (!job.ok()) {
      w->busy = w->ending = true;
      Unregister(*w);
      next.watcher = w;
      next.finish = std::make_unique<grpc::Status>(ToGrpc(job.status()));
    } else {
      Topic& t = topics_.at(job_id);
      if (version > t.version) {  // else a newer change was published meanwhile
        auto event = std::make_shared<v1::QuantJobEvent>();
        *event->mutable_job() = *std::move(job);
        t.version = version;
        t.event = std::move(event);
      }
      next = Next(*w);
    }
  }
  Run(next);  // gRPC queues operations started before the reactor is returned
  return w;
}

grpc::ServerWriteReactor<v1::QuantJobEvent>* JobWatchers::Reject(const grpc::Status& status) {
  return new Rejected(status);
}

void JobWatchers::Shutdown() {
  std::vector<Action> actions;
  {
    absl::MutexLock lock(&mu_);
    shutdown_ = true;
    std::vector<Watcher*> idle;
    for (auto& [id, t] : topics_) {
      for (Watcher* w : t.watchers) {
        if (!w->busy) idle.push_back(w);  // busy ones finish from OnWriteDone
      }
    }
    for (Watcher* w : idle) actions.push_back(Next(*w));
  }
  for (Action& a : actions) Run(a);
}

int64_t JobWatchers::open_streams() const {
  absl::MutexLock lock(&mu_);
  return open_;
}

JobWatchers::Action JobWatchers::Next(Watcher& w) {
  Action a;
  if (w.ending) return a;
  auto finish = [&](grpc::Status status) {
    w.busy = w.ending = true;
    Unregister(w);
    a.watcher = &w;
    a.finish = std::make_unique<grpc::Status>(std::move(status));
  };
  if (shutdown_) {
    finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "the coordinator is shutting down"));
  } else if (w.cancelled) {
    finish(grpc::Status(grpc::StatusCode::CANCELLED, "client went away"));
  } else if (w.sent_terminal) {
    finish(grpc::Status::OK);
  } else if (auto it = topics_.find(w.job_id); it != topics_.end() && it->second.version > w.sent) {
    const Topic& t = it->second;
    w.busy = true;
    w.sent = t.version;
    w.sent_terminal = IsTerminal(t.event->job().state());
    w.writing = t.event;
    a.watcher = &w;
    a.write = t.event;
  }
  return a;
}

void JobWatchers::Unregister(Watcher& w) {
  if (!w.registered) return;
  w.registered = false;
  auto it = topics_.find(w.job_id);
  it->second.watchers.erase(&w);
  if (it->second.watchers.empty()) topics_.erase(it);  // a queued dispatch then finds nothing
}

void JobWatchers::Run(Action& action) {
  if (action.write != nullptr) {
    action.watcher->StartWrite(action.write.get());
  } else if (action.finish != nullptr) {
    action.watcher->Finish(*action.finish);
  }
}

void JobWatchers::DispatchLoop() {
  while (true) {
    std::vector<Action> actions;
    {
      absl::MutexLock lock(&mu_);
      while (!stop_ && dirty_.empty()) work_.Wait(&mu_);
      if (stop_) return;
      std::vector<Watcher*> idle;
      for (const std::string& id : dirty_) {
        auto it = topics_.find(id);
        if (it == topics_.end()) continue;
        it->second.dirty = false;
        for (Watcher* w : it->second.watchers) {
          if (!w->busy) idle.push_back(w);  // busy ones catch up from OnWriteDone
        }
      }
      dirty_.clear();
      for (Watcher* w : idle) {
        if (Action a = Next(*w); a.watcher != nullptr) actions.push_back(std::move(a));
      }
    }
    // Outside the lock: the writes are started on this thread, never on JobManager's.
    for (Action& a : actions) Run(a);
  }
}

}  // namespace caliber::coordinator
