// stablelearn <command>: parse, call the library, print. Exit status: 0 success, 2 bad input
// (files, configs, shapes, command line), 1 internal failure.
#include <cstdio>
#include <iostream>

#include "commands.h"
#include "stablelearn/core/env.h"
#include "stablelearn/core/error.h"

int main(int argc, char** argv) {
  using namespace stablelearn;
  select_blas_kernels(argv);  // may re-execute this program once (OpenBLAS's kernel choice)
  CLI::App app{"stablelearn: continual learning of stable skills, continual-learning engine and "
               "stability diagnostics (C++17 / libtorch)",
               "stablelearn"};
  app.require_subcommand(0, 1);
  app.get_formatter()->column_width(34);
  cli::GlobalOptions global;
  bool show_version = false;
  app.add_flag("--version", show_version, "Print version, libtorch, BLAS and thread count, then exit");
  app.add_option("--threads", global.threads,
                 "Intra-op threads for libtorch and BLAS (default: all cores; recorded in run folders)")
      ->check(CLI::NonNegativeNumber);

  cli::CommandRegistry commands;
  cli::register_data_commands(app, commands);
  cli::register_lfd_commands(app, commands);
  cli::register_cl_commands(app, commands);
  cli::register_launch_command(app, commands);
  cli::register_repro_commands(app, commands);
  cli::register_unlearn_command(app, commands);
  cli::register_rl_commands(app, commands);
  cli::register_demo_command(app, commands);
  cli::register_list_command(app, commands);
  cli::register_diagnose_commands(app, commands);
  cli::register_diagnose_grokalign_command(*app.get_subcommand("diagnose"), commands);
  cli::register_report_command(app, commands);

  try {
    app.parse(argc, argv);
    // Applied once, before anything runs (Debian's libtorch otherwise uses one thread).
    apply_threads(global.threads);
    if (show_version) {
      std::cout << runtime_info_text(runtime_info());
      return 0;
    }
    const auto* action = commands.selected();
    if (action == nullptr) {
      std::cout << app.help();
      return 0;
    }
    return (*action)();
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "stablelearn: " << e.what() << " (see --help)\n";
    return 2;
  } catch (const Error& e) {
    std::cerr << "stablelearn: " << e.kind() << ": " << e.what() << "\n";
    return e.exit_code();
  } catch (const std::exception& e) {
    std::cerr << "stablelearn: internal error: " << e.what() << "\n";
    return 1;
  }
}
