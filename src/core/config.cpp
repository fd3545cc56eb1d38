#include "stablelearn/core/config.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include <toml++/toml.h>

#include "stablelearn/core/error.h"

namespace stablelearn {

struct Config::Impl {
  toml::table table;
};

Config::Config() : impl_(std::make_unique<Impl>()) {}
Config::~Config() = default;
Config::Config(const Config& o) : impl_(std::make_unique<Impl>(*o.impl_)), source_(o.source_) {}
Config& Config::operator=(const Config& o) {
  if (this != &o) {
    impl_ = std::make_unique<Impl>(*o.impl_);
    source_ = o.source_;
  }
  return *this;
}
Config::Config(Config&&) noexcept = default;
Config& Config::operator=(Config&&) noexcept = default;

Config Config::from_string(const std::string& text, const std::string& source) {
  Config c;
  c.source_ = source;
  try {
    c.impl_->table = toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    const auto& b = e.source().begin;
    SL_THROW(ConfigError, source, ":", b.line, ":", b.column, ": ", e.description());
  }
  return c;
}

Config Config::from_file(const std::filesystem::path& path) {
  std::ifstream probe(path);
  SL_CHECK(probe.good(), IoError, path.string(), ": cannot open config file");
  std::stringstream ss;
  ss << probe.rdbuf();
  return from_string(ss.str(), path.string());
}

void Config::set(const std::string& assignment) {
  const auto eq = assignment.find('=');
  SL_CHECK(eq != std::string::npos && eq > 0, ConfigError, "--set '", assignment, "': expected section.key=value");
  const std::string key = assignment.substr(0, eq);
  const std::string value = assignment.substr(eq + 1);
  const auto dot = key.find('.');
  SL_CHECK(dot != std::string::npos && dot > 0 && dot + 1 < key.size() && key.find('.', dot + 1) == std::string::npos,
           ConfigError, "--set '", assignment, "': the key must be section.key (e.g. train.iterations=100)");
  const std::string section = key.substr(0, dot), name = key.substr(dot + 1);
  toml::table parsed;
  try {
    parsed = toml::parse("v = " + value);
  } catch (const toml::parse_error&) {
    parsed = toml::table{{"v", value}};  // a bare word: a string
  }
  auto* existing = impl_->table.get(section);
  if (existing == nullptr) {
    impl_->table.insert(section, toml::table{});
    existing = impl_->table.get(section);
  }
  SL_CHECK(existing->is_table(), ConfigError, "--set '", assignment, "': '", section, "' is not a table in ", source_);
  existing->as_table()->insert_or_assign(name, *parsed.get("v"));
}

ConfigSection Config::section(const std::string& name) const { return ConfigSection(this, name); }

void Config::check_sections(const std::vector<std::string>& known) const {
  for (const auto& [k, v] : impl_->table) {
    const std::string key(k.str());
    bool ok = false;
    for (const auto& s : known) ok |= s == key;
    if (!ok) {
      std::string list;
      for (const auto& s : known) list += (list.empty() ? "" : ", ") + s;
      SL_THROW(ConfigError, source_, ": unknown section '", key, "' (valid: ", list, ")");
    }
  }
}

namespace {
/// toml++ 3.3's default output mis-writes strings with line breaks: one that starts with a line
/// break goes into a multi-line string, whose first line break a TOML reader drops, and without
/// multi-line strings it writes a one-line literal string '...' holding the raw line break, which
/// no reader accepts (both found by fuzz/fuzz_config.cpp). Such strings are written as basic
/// strings with escapes (\n); every other document keeps toml++'s default form.
constexpr auto kEscapedFlags = toml::toml_formatter::default_flags & ~toml::format_flags::allow_multi_line_strings &
                               ~toml::format_flags::allow_literal_strings;

bool has_control_chars(const std::string& s) {
  return std::any_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}

bool any_control_chars(const toml::node& n) {
  if (const auto* s = n.as_string()) return has_control_chars(s->get());
  if (const auto* t = n.as_table())
    for (const auto& [k, v] : *t)
      if (has_control_chars(std::string(k.str())) || any_control_chars(v)) return true;
  if (const auto* a = n.as_array())
    for (const auto& v : *a)
      if (any_control_chars(v)) return true;
  return false;
}

toml::format_flags write_flags(const toml::node& n) {
  return any_control_chars(n) ? kEscapedFlags : toml::toml_formatter::default_flags;
}
}  // namespace

std::string Config::to_string() const {
  std::ostringstream os;
  os << toml::toml_formatter(impl_->table, write_flags(impl_->table)) << "\n";
  return os.str();
}

namespace {
void flatten(const toml::table& t, const std::string& prefix, std::map<std::string, std::string>& out) {
  for (const auto& [k, v] : t) {
    const std::string key = prefix.empty() ? std::string(k.str()) : prefix + "." + std::string(k.str());
    if (const auto* sub = v.as_table()) {
      flatten(*sub, key, out);
      continue;
    }
    std::ostringstream os;
    v.visit([&os](const auto& node) {
      if constexpr (toml::is_string<decltype(node)> || toml::is_array<decltype(node)>)
        os << toml::toml_formatter(node, write_flags(node));
      else
        os << node;
    });
    out[key] = os.str();
  }
}
}  // namespace

std::map<std::string, std::string> Config::flat_values() const {
  std::map<std::string, std::string> out;
  flatten(impl_->table, "", out);
  return out;
}

// ---------------------------------------------------------------------------------------------

std::string ConfigSection::where(const std::string& key) const { return cfg_->source_ + ": " + name_ + "." + key; }

const void* ConfigSection::node(const std::string& key) const {
  const auto* sec = cfg_->impl_->table.get(name_);
  if (sec == nullptr) return nullptr;
  SL_CHECK(sec->is_table(), ConfigError, cfg_->source_, ": '", name_, "' must be a table");
  return sec->as_table()->get(key);
}

bool ConfigSection::has(const std::string& key) const { return node(key) != nullptr; }

std::int64_t ConfigSection::get(const std::string& key, std::int64_t fallback) {
  read_.insert(key);
  const auto* n = static_cast<const toml::node*>(node(key));
  if (n == nullptr) return fallback;
  SL_CHECK(n->is_integer(), ConfigError, where(key), ": expected an integer, got ", n->type());
  return n->as_integer()->get();
}

double ConfigSection::get(const std::string& key, double fallback) {
  read_.insert(key);
  const auto* n = static_cast<const toml::node*>(node(key));
  if (n == nullptr) return fallback;
  if (n->is_integer()) return static_cast<double>(n->as_integer()->get());
  SL_CHECK(n->is_floating_point(), ConfigError, where(key), ": expected a number, got ", n->type());
  return n->as_floating_point()->get();
}

bool ConfigSection::get(const std::string& key, bool fallback) {
  read_.insert(key);
  const auto* n = static_cast<const toml::node*>(node(key));
  if (n == nullptr) return fallback;
  SL_CHECK(n->is_boolean(), ConfigError, where(key), ": expected true or false, got ", n->type());
  return n->as_boolean()->get();
}

std::string ConfigSection::get(const std::string& key, const std::string& fallback) {
  read_.insert(key);
  const auto* n = static_cast<const toml::node*>(node(key));
  if (n == nullptr) return fallback;
  SL_CHECK(n->is_string(), ConfigError, where(key), ": expected a string, got ", n->type());
  return n->as_string()->get();
}

std::vector<std::int64_t> ConfigSection::get(const std::string& key, const std::vector<std::int64_t>& fallback) {
  read_.insert(key);
  const auto* n = static_cast<const toml::node*>(node(key));
  if (n == nullptr) return fallback;
  SL_CHECK(n->is_array(), ConfigError, where(key), ": expected a list of integers, got ", n->type());
  std::vector<std::int64_t> out;
  for (const auto& v : *n->as_array()) {
    SL_CHECK(v.is_integer(), ConfigError, where(key), ": expected a list of integers, found a ", v.type());
    out.push_back(v.as_integer()->get());
  }
  return out;
}

std::vector<std::string> ConfigSection::get(const std::string& key, const std::vector<std::string>& fallback) {
  read_.insert(key);
  const auto* n = static_cast<const toml::node*>(node(key));
  if (n == nullptr) return fallback;
  SL_CHECK(n->is_array(), ConfigError, where(key), ": expected a list of strings, got ", n->type());
  std::vector<std::string> out;
  for (const auto& v : *n->as_array()) {
    SL_CHECK(v.is_string(), ConfigError, where(key), ": expected a list of strings, found a ", v.type());
    out.push_back(v.as_string()->get());
  }
  return out;
}

void ConfigSection::finish() const {
  const auto* sec = cfg_->impl_->table.get(name_);
  if (sec == nullptr || !sec->is_table()) return;
  for (const auto& [k, v] : *sec->as_table()) {
    const std::string key(k.str());
    if (read_.count(key)) continue;
    std::string valid;
    for (const auto& r : read_) valid += (valid.empty() ? "" : ", ") + r;
    SL_THROW(ConfigError, cfg_->source_, ": unknown key '", name_, ".", key, "' (valid keys of [", name_, "]: ", valid, ")");
  }
}

// ---------------------------------------------------------------------------------------------

namespace {
toml::table& table_of(toml::table& doc, const std::string& section) {
  if (!doc.contains(section)) doc.insert(section, toml::table{});
  return *doc.get(section)->as_table();
}
}  // namespace

ConfigWriter::ConfigWriter() = default;
ConfigWriter::~ConfigWriter() = default;

void ConfigWriter::put(const std::string& s, const std::string& k, std::int64_t v) {
  table_of(doc_.impl_->table, s).insert_or_assign(k, v);
}
void ConfigWriter::put(const std::string& s, const std::string& k, double v) {
  table_of(doc_.impl_->table, s).insert_or_assign(k, v);
}
void ConfigWriter::put(const std::string& s, const std::string& k, bool v) {
  table_of(doc_.impl_->table, s).insert_or_assign(k, v);
}
void ConfigWriter::put(const std::string& s, const std::string& k, const std::string& v) {
  table_of(doc_.impl_->table, s).insert_or_assign(k, v);
}
void ConfigWriter::put(const std::string& s, const std::string& k, const std::vector<std::int64_t>& v) {
  toml::array a;
  for (auto x : v) a.push_back(x);
  table_of(doc_.impl_->table, s).insert_or_assign(k, std::move(a));
}
void ConfigWriter::put(const std::string& s, const std::string& k, const std::vector<std::string>& v) {
  toml::array a;
  for (const auto& x : v) a.push_back(x);
  table_of(doc_.impl_->table, s).insert_or_assign(k, std::move(a));
}
Config ConfigWriter::config() const { return doc_; }
std::string ConfigWriter::to_string() const { return doc_.to_string(); }

}  // namespace stablelearn
