# unit tests of the Shamir/SLIP-0039 and backup code
