// Returns the JavaScript heap's unused memory to the operating system.
//
//   lowMemory(): void   V8's low-memory notification: full collections with compaction, the
//                       young generation shrunk and free heap pages released. It blocks the
//                       event loop for a few hundred milliseconds (0.8 s on a 2-core machine
//                       at load 13), so it is for moments when nothing is being served.
//
//   pressure(): void    V8's moderate memory-pressure notification: starts an incremental
//                       collection (if none runs) that marks while JavaScript runs, so dropped
//                       Buffers and their external memory are freed soon, without a long pause.
//
// Node-API has no way to ask for either, so this one call uses V8's C++ API directly
// (v8::Isolate::LowMemoryNotification, present in every Node release). The addon is built
// against the Node that installs it, like the others.
#include <napi.h>
#include <v8.h>

namespace {

Napi::Value LowMemory(const Napi::CallbackInfo& info) {
  v8::Isolate* isolate = v8::Isolate::GetCurrent();
  if (isolate != nullptr) isolate->LowMemoryNotification();
  return info.Env().Undefined();
}

Napi::Value Pressure(const Napi::CallbackInfo& info) {
  v8::Isolate* isolate = v8::Isolate::GetCurrent();
  if (isolate != nullptr) isolate->MemoryPressureNotification(v8::MemoryPressureLevel::kModerate);
  return info.Env().Undefined();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("lowMemory", Napi::Function::New(env, LowMemory, "lowMemory"));
  exports.Set("pressure", Napi::Function::New(env, Pressure, "pressure"));
  return exports;
}

}  // namespace

NODE_API_MODULE(strata_memory, Init)
