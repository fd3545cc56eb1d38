// TOML configuration (toml++ behind a small interface, so only src/core/config.cpp pays for its
// headers). Options structs declare their keys once (core/options.h), which reads their table with a
// ConfigSection and writes their resolved values with a ConfigWriter (shared/STYLE.md #2). Unknown
// keys are errors naming the key and listing the valid ones.
//
//   auto cfg = Config::from_file("run.toml");
//   cfg.set("train.iterations=200");                 // --set, value parsed as a TOML value
//   auto s = cfg.section("train");
//   opts.iterations = s.get("iterations", opts.iterations);
//   s.finish();                                      // ConfigError for keys nobody read
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace stablelearn {

class ConfigSection;

/// A parsed TOML document.
class Config {
 public:
  Config();
  ~Config();
  Config(const Config&);
  Config& operator=(const Config&);
  Config(Config&&) noexcept;
  Config& operator=(Config&&) noexcept;

  /// Parses a file; ConfigError naming the file, line and column on a syntax error.
  static Config from_file(const std::filesystem::path& path);
  /// Parses text; `source` names it in errors.
  static Config from_string(const std::string& text, const std::string& source = "config");

  /// Applies an override "section.key=value". The value is parsed as a TOML value (so 3, 0.5,
  /// true, "text", [1, 2] keep their types); a bare word that is not valid TOML is taken as a
  /// string. ConfigError for a malformed override.
  void set(const std::string& assignment);

  /// Reader of the table `name` (empty table if absent). Top-level keys other than the sections
  /// that were read are reported by check_sections().
  ConfigSection section(const std::string& name) const;
  /// ConfigError if the document has a top-level key not in `known`.
  void check_sections(const std::vector<std::string>& known) const;

  /// The document as TOML text.
  std::string to_string() const;
  /// Every value as "table.key" (dotted for nested tables) -> its TOML text, e.g. for naming the
  /// keys in which two resolved configs differ.
  std::map<std::string, std::string> flat_values() const;
  const std::string& source() const { return source_; }

 private:
  friend class ConfigSection;
  friend class ConfigWriter;
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string source_;
};

/// Typed reads of one table; remembers which keys were read so finish() can reject the rest.
class ConfigSection {
 public:
  std::int64_t get(const std::string& key, std::int64_t fallback);
  int get(const std::string& key, int fallback) { return static_cast<int>(get(key, static_cast<std::int64_t>(fallback))); }
  double get(const std::string& key, double fallback);   ///< integers are accepted for doubles
  bool get(const std::string& key, bool fallback);
  std::string get(const std::string& key, const std::string& fallback);
  std::string get(const std::string& key, const char* fallback) { return get(key, std::string(fallback)); }
  std::vector<std::int64_t> get(const std::string& key, const std::vector<std::int64_t>& fallback);
  std::vector<std::string> get(const std::string& key, const std::vector<std::string>& fallback);
  bool has(const std::string& key) const;
  /// ConfigError naming every key of the table that was not read, with the valid keys.
  void finish() const;
  /// The table's name.
  const std::string& name() const { return name_; }
  /// "SOURCE: table.key", the prefix of errors about `key`.
  std::string where(const std::string& key) const;

 private:
  friend class Config;
  ConfigSection(const Config* cfg, std::string name) : cfg_(cfg), name_(std::move(name)) {}
  const void* node(const std::string& key) const;
  const Config* cfg_;
  std::string name_;
  std::set<std::string> read_;
};

/// Builds a TOML document of resolved values (to_toml of every Options struct).
class ConfigWriter {
 public:
  ConfigWriter();
  ~ConfigWriter();
  void put(const std::string& section, const std::string& key, std::int64_t value);
  void put(const std::string& section, const std::string& key, int value) { put(section, key, static_cast<std::int64_t>(value)); }
  void put(const std::string& section, const std::string& key, double value);
  void put(const std::string& section, const std::string& key, bool value);
  void put(const std::string& section, const std::string& key, const std::string& value);
  void put(const std::string& section, const std::string& key, const char* value) { put(section, key, std::string(value)); }
  void put(const std::string& section, const std::string& key, const std::vector<std::int64_t>& value);
  void put(const std::string& section, const std::string& key, const std::vector<std::string>& value);
  Config config() const;
  std::string to_string() const;

 private:
  Config doc_;
};

}  // namespace stablelearn
